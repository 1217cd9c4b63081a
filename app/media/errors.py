"""Media's error codes: uploads (multipart and tus), the quota, photo/video limits, signed links."""

from app.core.errors import error_code

NOT_MULTIPART = error_code(
    "media.not_multipart",
    415,
    "Tệp phải được gửi dạng multipart/form-data.",
    "The file must be sent as multipart/form-data.",
)
FILE_MISSING = error_code(
    "media.file_missing",
    422,
    "Thiếu tệp trong trường '{field}'.",
    "No file in the '{field}' field.",
)
TOO_MANY_FILES = error_code(
    "media.too_many_files",
    422,
    "Mỗi lần chỉ tải lên một tệp.",
    "Upload one file at a time.",
)
EMPTY_FILE = error_code(
    "media.empty_file",
    422,
    "Tệp rỗng.",
    "The file is empty.",
)
TOO_LARGE = error_code(
    "media.too_large",
    413,
    "Tệp quá lớn (tối đa {limit} byte).",
    "The file is too large (at most {limit} bytes).",
)
UNSUPPORTED_TYPE = error_code(
    "media.unsupported_type",
    415,
    "Định dạng tệp không được chấp nhận (chỉ nhận {accepted}).",
    "This file format is not accepted (only {accepted}).",
)
TYPE_MISMATCH = error_code(
    "media.type_mismatch",
    415,
    "Nội dung tệp ({detected}) không khớp với loại hoặc đuôi tệp đã khai báo.",
    "The file's content ({detected}) does not match its declared type or extension.",
)
CORRUPT = error_code(
    "media.corrupt",
    422,
    "Tệp bị hỏng hoặc không hoàn chỉnh.",
    "The file is corrupt or incomplete.",
)
MALFORMED_UPLOAD = error_code(
    "media.malformed_upload",
    400,
    "Nội dung multipart không hợp lệ.",
    "The multipart body is malformed.",
)
MEDIA_NOT_FOUND = error_code(
    "media.not_found",
    404,
    "Không tìm thấy tệp.",
    "The file was not found.",
)
ACTIVE_CONTENT = error_code(
    "media.active_content",
    422,
    "Tệp PDF chứa mã chạy được hoặc tệp nhúng ({markers}); hãy in/xuất lại thành PDF thường.",
    "The PDF contains runnable code or embedded files ({markers}); print or export it again "
    "as a plain PDF.",
)

TOO_MANY_PIXELS = error_code(
    "media.too_many_pixels",
    422,
    "Ảnh quá lớn ({pixels} điểm ảnh, tối đa {limit}).",
    "The image is too large ({pixels} pixels, at most {limit}).",
)
VIDEO_TOO_LONG = error_code(
    "media.video_too_long",
    422,
    "Video quá dài ({seconds} giây, tối đa {limit} giây).",
    "The video is too long ({seconds} s, at most {limit} s).",
)
COMPRESSION_TOO_HIGH = error_code(
    "media.compression_too_high",
    422,
    "Ảnh bị nén bất thường ({pixels} điểm ảnh trong {size} byte); hãy gửi ảnh chụp gốc.",
    "The image is compressed abnormally ({pixels} pixels in {size} bytes); send the original "
    "photo.",
)
VIDEO_TOO_HEAVY = error_code(
    "media.video_too_heavy",
    422,
    "Video có quá nhiều khung hình hoặc khung hình quá lớn ({reason}).",
    "The video has too many frames or frames too large ({reason}).",
)
LINK_INVALID = error_code(
    "media.link_invalid",
    403,
    "Đường dẫn tệp không hợp lệ hoặc đã hết hạn.",
    "The media link is invalid or has expired.",
)
TUS_VERSION = error_code(
    "media.tus_version_unsupported",
    412,
    "Phiên bản giao thức tus không được hỗ trợ (cần 1.0.0).",
    "Unsupported tus protocol version (1.0.0 is required).",
)
TUS_LENGTH_REQUIRED = error_code(
    "media.tus_length_required",
    400,
    "Thiếu hoặc sai tiêu đề Upload-Length.",
    "Upload-Length is missing or invalid.",
)
TUS_TOO_LARGE = error_code(
    "media.tus_too_large",
    413,
    "Tệp vượt quá kích thước tối đa ({limit} byte).",
    "The upload is larger than the maximum ({limit} bytes).",
)
QUOTA_EXCEEDED = error_code(
    "media.quota_exceeded",
    413,
    "Bạn đã dùng hết dung lượng tải lên ({limit} byte).",
    "Your upload quota ({limit} bytes) is used up.",
)
TUS_NOT_FOUND = error_code(
    "media.upload_not_found",
    404,
    "Không tìm thấy phiên tải lên (hoặc đã hết hạn).",
    "No such upload (or it has expired).",
)
TUS_OFFSET_MISMATCH = error_code(
    "media.upload_offset_mismatch",
    409,
    "Vị trí tải lên không khớp (máy chủ đã nhận {offset} byte).",
    "Upload-Offset does not match (the server has {offset} bytes).",
)
TUS_LOCKED = error_code(
    "media.upload_locked",
    423,
    "Phiên tải lên đang nhận dữ liệu từ một yêu cầu khác; hãy thử lại sau.",
    "Another request is writing to this upload; try again shortly.",
)
TUS_CONTENT_TYPE = error_code(
    "media.upload_content_type",
    415,
    "Nội dung PATCH phải là application/offset+octet-stream.",
    "A PATCH body must be application/offset+octet-stream.",
)
TUS_PAST_LENGTH = error_code(
    "media.upload_past_length",
    413,
    "Dữ liệu gửi lên vượt quá độ dài đã khai báo ({length} byte).",
    "The data goes past the declared Upload-Length ({length} bytes).",
)
TUS_CHECKSUM_ALGORITHM = error_code(
    "media.checksum_algorithm_unsupported",
    400,
    "Thuật toán kiểm tra không được hỗ trợ (sha1, sha256).",
    "Unsupported checksum algorithm (sha1, sha256).",
)
TUS_CHECKSUM_MISMATCH = error_code(
    "media.checksum_mismatch",
    460,
    "Mã kiểm tra không khớp; phần dữ liệu này đã bị bỏ.",
    "Checksum mismatch; this chunk was discarded.",
)
TUS_METADATA = error_code(
    "media.upload_metadata_invalid",
    400,
    "Tiêu đề Upload-Metadata không hợp lệ.",
    "Upload-Metadata is malformed.",
)
TUS_ALREADY_COMPLETE = error_code(
    "media.upload_complete",
    409,
    "Phiên tải lên đã hoàn tất.",
    "The upload is already complete.",
)
