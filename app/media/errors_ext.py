from app.core.errors import error_code

TOO_MANY_PIXELS = error_code(
    "media.too_many_pixels", 422,
    "Ảnh quá lớn ({pixels} điểm ảnh, tối đa {limit}).",
    "The image is too large ({pixels} pixels, at most {limit}).",
)
VIDEO_TOO_LONG = error_code(
    "media.video_too_long", 422,
    "Video quá dài ({seconds} giây, tối đa {limit} giây).",
    "The video is too long ({seconds} s, at most {limit} s).",
)
LINK_INVALID = error_code(
    "media.link_invalid", 403,
    "Đường dẫn tệp không hợp lệ hoặc đã hết hạn.", "The media link is invalid or has expired.",
)
