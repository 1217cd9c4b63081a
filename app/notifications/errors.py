"""Problem codes of the notifications domain."""

from __future__ import annotations

from app.core.errors import error_code

DEVICE_NOT_FOUND = error_code(
    "device.not_found",
    404,
    "Không tìm thấy thiết bị này trong tài khoản của bạn.",
    "This device is not registered to your account.",
)
NOTIFICATION_NOT_FOUND = error_code(
    "notification.not_found",
    404,
    "Không tìm thấy thông báo.",
    "The notification was not found.",
)
INVALID_CURSOR = error_code(
    "notification.invalid_cursor",
    400,
    "Con trỏ phân trang không hợp lệ.",
    "The pagination cursor is invalid.",
)
INVALID_QUIET_HOURS = error_code(
    "notification.invalid_quiet_hours",
    422,
    "Giờ yên tĩnh phải có giờ bắt đầu và kết thúc khác nhau, dạng HH:MM.",
    "Quiet hours need different start and end times, as HH:MM.",
)
ANNOUNCEMENT_NOT_FOUND = error_code(
    "announcement.not_found",
    404,
    "Không tìm thấy thông báo chung.",
    "The announcement was not found.",
)
ANNOUNCEMENT_SCOPE_FORBIDDEN = error_code(
    "announcement.scope_forbidden",
    403,
    "Bạn chỉ có thể gửi thông báo tới phường/xã mình phụ trách.",
    "You can only send announcements to the ward you serve.",
)
ANNOUNCEMENT_WARD_REQUIRED = error_code(
    "announcement.ward_required",
    422,
    "Cần chọn phường/xã nhận thông báo.",
    "Choose the ward that receives the announcement.",
)
ANNOUNCEMENT_SCHEDULE_IN_PAST = error_code(
    "announcement.schedule_in_past",
    422,
    "Thời điểm gửi phải ở tương lai.",
    "The scheduled time must be in the future.",
)
ANNOUNCEMENT_NOT_CANCELLABLE = error_code(
    "announcement.not_cancellable",
    409,
    "Thông báo đã bắt đầu gửi nên không thể hủy.",
    "The announcement is already being sent and cannot be cancelled.",
)
