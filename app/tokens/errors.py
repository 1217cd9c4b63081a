from app.core.errors import error_code

REFRESH_INVALID = error_code(
    "auth.refresh_token_invalid",
    401,
    "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
    "The refresh token is invalid or expired. Please sign in again.",
)
REFRESH_REUSED = error_code(
    "auth.refresh_token_reused",
    401,
    "Mã làm mới đã được dùng trước đó; vì an toàn, phiên đăng nhập này đã bị thu hồi.",
    "This refresh token was already used; for your safety the whole session was revoked.",
)
SESSION_NOT_FOUND = error_code(
    "auth.session_not_found",
    404,
    "Không tìm thấy phiên đăng nhập.",
    "The session was not found.",
)
