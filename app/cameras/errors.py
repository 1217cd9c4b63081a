from app.core.errors import error_code

# Webhook authentication (Standard Webhooks).
WEBHOOK_UNSIGNED = error_code(
    "camera_alert.unsigned",
    401,
    "Thiếu chữ ký webhook (webhook-id, webhook-timestamp, webhook-signature).",
    "The webhook signature headers (webhook-id, webhook-timestamp, webhook-signature) are missing.",
)
WEBHOOK_BAD_SIGNATURE = error_code(
    "camera_alert.bad_signature",
    401,
    "Chữ ký webhook không hợp lệ.",
    "The webhook signature does not match.",
)
WEBHOOK_TIMESTAMP = error_code(
    "camera_alert.timestamp_out_of_tolerance",
    401,
    "Thời điểm ký webhook lệch quá {tolerance} giây so với máy chủ.",
    "The webhook timestamp is more than {tolerance} seconds away from the server's time.",
)
WEBHOOK_NOT_CONFIGURED = error_code(
    "camera_alert.not_configured",
    503,
    "Chưa cấu hình khóa bí mật cho webhook camera.",
    "No camera webhook secret is configured.",
)

# The alert itself.
CAMERA_UNKNOWN = error_code(
    "camera_alert.unknown_camera",
    422,
    "Camera '{camera_id}' chưa được đăng ký.",
    "Camera '{camera_id}' is not registered.",
)
CAMERA_DISABLED = error_code(
    "camera_alert.camera_disabled",
    422,
    "Camera '{camera_id}' đã bị vô hiệu hóa.",
    "Camera '{camera_id}' is disabled.",
)
SNAPSHOT_INVALID = error_code(
    "camera_alert.snapshot_invalid",
    422,
    "Ảnh chụp không phải ảnh JPEG hợp lệ: {reason}.",
    "The snapshot is not a valid JPEG image: {reason}.",
)
SNAPSHOT_TOO_LARGE = error_code(
    "camera_alert.snapshot_too_large",
    413,
    "Ảnh chụp quá lớn (tối đa {limit} byte, {max_pixels} điểm ảnh).",
    "The snapshot is too large (at most {limit} bytes, {max_pixels} pixels).",
)

# Registry.
CAMERA_NOT_FOUND = error_code(
    "camera.not_found",
    404,
    "Không tìm thấy camera.",
    "The camera was not found.",
)
CAMERA_CODE_TAKEN = error_code(
    "camera.code_taken",
    409,
    "Mã camera '{code}' đã được sử dụng.",
    "The camera code '{code}' is already in use.",
)
CAMERA_OUTSIDE_SERVICE_AREA = error_code(
    "camera.outside_service_area",
    422,
    "Vị trí camera nằm ngoài địa bàn phục vụ của thành phố.",
    "The camera's location is outside the city's service area.",
)
ALERT_NOT_FOUND = error_code(
    "camera_alert.not_found",
    404,
    "Không tìm thấy cảnh báo camera.",
    "The camera alert was not found.",
)
SNAPSHOT_NOT_AVAILABLE = error_code(
    "camera_alert.snapshot_not_available",
    404,
    "Cảnh báo này không có ảnh (hoặc ảnh chưa được xử lý).",
    "This alert has no picture (or it has not been processed yet).",
)

# Device positions for nearby warnings.
DEVICE_NOT_FOUND = error_code(
    "device_position.device_not_found",
    404,
    "Thiết bị này chưa được đăng ký cho tài khoản của bạn.",
    "This device is not registered to your account.",
)
NOT_OPTED_IN = error_code(
    "device_position.not_opted_in",
    409,
    "Hãy bật nhận cảnh báo giao thông trước khi chia sẻ vị trí.",
    "Turn on traffic alerts before sharing a position.",
)
