from app.core.errors import error_code

NOT_MULTIPART = error_code(
    "media.not_multipart", 415,
    "Tệp phải được gửi dạng multipart/form-data.",
    "The file must be sent as multipart/form-data.",
)
FILE_MISSING = error_code(
    "media.file_missing", 422,
    "Thiếu tệp trong trường '{field}'.", "No file in the '{field}' field.",
)
TOO_MANY_FILES = error_code(
    "media.too_many_files", 422,
    "Mỗi lần chỉ tải lên một tệp.", "Upload one file at a time.",
)
EMPTY_FILE = error_code(
    "media.empty_file", 422, "Tệp rỗng.", "The file is empty.",
)
TOO_LARGE = error_code(
    "media.too_large", 413,
    "Tệp quá lớn (tối đa {limit} byte).", "The file is too large (at most {limit} bytes).",
)
UNSUPPORTED_TYPE = error_code(
    "media.unsupported_type", 415,
    "Định dạng tệp không được chấp nhận (chỉ nhận {accepted}).",
    "This file format is not accepted (only {accepted}).",
)
TYPE_MISMATCH = error_code(
    "media.type_mismatch", 415,
    "Nội dung tệp ({detected}) không khớp với loại hoặc đuôi tệp đã khai báo.",
    "The file's content ({detected}) does not match its declared type or extension.",
)
CORRUPT = error_code(
    "media.corrupt", 422,
    "Tệp bị hỏng hoặc không hoàn chỉnh.", "The file is corrupt or incomplete.",
)
MALFORMED_UPLOAD = error_code(
    "media.malformed_upload", 400,
    "Nội dung multipart không hợp lệ.", "The multipart body is malformed.",
)
MEDIA_NOT_FOUND = error_code(
    "media.not_found", 404, "Không tìm thấy tệp.", "The file was not found.",
)
ACTIVE_CONTENT = error_code(
    "media.active_content", 422,
    "Tệp PDF chứa mã chạy được hoặc tệp nhúng ({markers}); hãy in/xuất lại thành PDF thường.",
    "The PDF contains runnable code or embedded files ({markers}); print or export it again "
    "as a plain PDF.",
)
