from app.core.errors import error_code

CLIENT_INVALID = error_code(
    "oauth.client_invalid",
    422,
    "Thông tin ứng dụng đối tác không hợp lệ: {reason}.",
    "The partner application's registration is invalid: {reason}.",
)
CLIENT_NOT_FOUND = error_code(
    "oauth.client_not_found",
    404,
    "Không tìm thấy ứng dụng đối tác.",
    "The partner application was not found.",
)
APP_NOT_FOUND = error_code(
    "oauth.app_not_found",
    404,
    "Bạn chưa cho phép ứng dụng này.",
    "You have not allowed this application.",
)
SECTOR_INVALID = error_code(
    "oauth.sector_identifier_invalid",
    422,
    "sector_identifier_uri không dùng được: {reason}.",
    "The sector_identifier_uri cannot be used: {reason}.",
)
