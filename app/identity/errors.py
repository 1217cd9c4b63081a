from app.core.errors import error_code

INVALID_PHONE = error_code(
    "identity.invalid_phone",
    422,
    "Số điện thoại di động Việt Nam không hợp lệ.",
    "This is not a valid Vietnamese mobile number.",
)
PHONE_TAKEN = error_code(
    "identity.phone_already_registered",
    409,
    "Số điện thoại này đã được đăng ký. Vui lòng đăng nhập hoặc lấy lại mật khẩu.",
    "This phone number is already registered. Sign in or reset your password.",
)
OTP_RESEND_TOO_SOON = error_code(
    "otp.resend_too_soon",
    429,
    "Vui lòng đợi {retry_after} giây trước khi yêu cầu mã mới.",
    "Please wait {retry_after} seconds before asking for a new code.",
)
OTP_INVALID = error_code(
    "otp.invalid",
    400,
    "Mã xác thực không đúng. Bạn còn {remaining} lần thử.",
    "The verification code is wrong. {remaining} attempts left.",
)
OTP_EXPIRED = error_code(
    "otp.expired",
    400,
    "Mã xác thực đã hết hạn hoặc đã được sử dụng. Vui lòng yêu cầu mã mới.",
    "The verification code has expired or was already used. Please ask for a new one.",
)
OTP_TOO_MANY_ATTEMPTS = error_code(
    "otp.too_many_attempts",
    429,
    "Bạn đã nhập sai mã quá nhiều lần. Vui lòng yêu cầu mã mới.",
    "Too many wrong codes. Please ask for a new one.",
)
WEAK_PASSWORD = error_code(
    "identity.weak_password",
    422,
    "Mật khẩu chưa đủ an toàn: {reason_vi}.",
    "The password is not strong enough: {reason_en}.",
)
INVALID_CREDENTIALS = error_code(
    "auth.invalid_credentials",
    401,
    "Số điện thoại hoặc mật khẩu không đúng.",
    "Wrong phone number or password.",
)
ACCOUNT_LOCKED = error_code(
    "auth.account_locked",
    429,
    "Đăng nhập sai nhiều lần. Vui lòng thử lại sau {retry_after} giây hoặc đặt lại mật khẩu.",
    "Too many failed sign-ins. Try again in {retry_after} seconds or reset your password.",
)
ACCOUNT_DISABLED = error_code(
    "auth.account_disabled",
    403,
    "Tài khoản đã bị khóa. Vui lòng liên hệ UBND phường/xã.",
    "This account is disabled. Please contact your ward office.",
)
INVALID_CCCD = error_code(
    "identity.invalid_cccd",
    422,
    "Số CCCD không hợp lệ: {reason_vi}.",
    "The citizen ID number is invalid: {reason_en}.",
)
CCCD_TAKEN = error_code(
    "identity.cccd_already_used",
    409,
    "Số CCCD này đã được khai báo cho một tài khoản khác. Nếu đây là số CCCD của bạn, vui lòng "
    "mang thẻ CCCD đến UBND phường/xã: cán bộ xác thực trực tiếp (mức 2) sẽ gán số này cho "
    "tài khoản của bạn.",
    "This citizen ID number was declared for another account. If it is yours, bring your CCCD "
    "card to your ward office: an in-person (level 2) verification assigns it to your account.",
)
CCCD_VERIFIED_ELSEWHERE = error_code(
    "identity.cccd_verified_elsewhere",
    409,
    "Số CCCD này đã được xác thực trực tiếp cho một tài khoản khác. Cần xử lý theo quy trình "
    "giải quyết tranh chấp danh tính, không thể gán lại tại quầy.",
    "This citizen ID number was verified in person for another account. It must go through the "
    "identity dispute procedure; it cannot be reassigned at the counter.",
)
IDENTITY_REQUIRED = error_code(
    "identity.identity_not_declared",
    409,
    "Công dân chưa khai báo thông tin định danh (CCCD).",
    "The citizen has not declared an identity (CCCD) yet.",
)
USER_NOT_FOUND = error_code(
    "identity.user_not_found",
    404,
    "Không tìm thấy công dân.",
    "The citizen was not found.",
)
VERIFICATION_NOT_FOUND = error_code(
    "identity.verification_not_found",
    404,
    "Không có xác thực mức 2 đang hiệu lực.",
    "There is no active level 2 verification.",
)
REASON_REQUIRED = error_code(
    "audit.reason_required",
    422,
    "Cần nêu lý do khi xem hoặc thay đổi dữ liệu cá nhân của công dân.",
    "A reason is required to read or change a citizen's personal data.",
)
WRONG_PASSWORD = error_code(
    "identity.password_confirmation_failed",
    403,
    "Mật khẩu xác nhận không đúng.",
    "The confirmation password is wrong.",
)
ROLE_INVALID = error_code(
    "identity.invalid_role",
    422,
    "Vai trò không hợp lệ hoặc thiếu phường/xã cho cán bộ.",
    "Invalid role, or a ward is missing for a staff role.",
)
CANNOT_DELETE_STAFF = error_code(
    "identity.staff_account_cannot_self_delete",
    409,
    "Tài khoản cán bộ do quản trị viên quản lý, không thể tự xóa.",
    "Staff accounts are managed by administrators and cannot delete themselves.",
)
DOCUMENT_MISMATCH = error_code(
    "identity.document_mismatch",
    409,
    "Số trên giấy tờ không khớp với số CCCD công dân đã khai báo.",
    "The number on the document does not match the citizen's declared CCCD.",
)
NOT_WARD_STAFF = error_code(
    "identity.not_ward_staff",
    403,
    "Chỉ cán bộ của một phường/xã mới nhận ca trực.",
    "Only staff of a ward take duty shifts.",
)
