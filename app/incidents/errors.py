from app.core.errors import error_code

OUTSIDE_SERVICE_AREA = error_code(
    "incident.outside_service_area",
    422,
    "Vị trí nằm ngoài địa bàn tỉnh Thái Nguyên.",
    "The location is outside the service area of Thai Nguyen province.",
)
UNKNOWN_CATEGORY = error_code(
    "incident.unknown_category",
    422,
    "Loại sự cố không hợp lệ.",
    "Unknown incident category.",
)
POSSIBLE_DUPLICATE = error_code(
    "incident.possible_duplicate",
    409,
    'Đã có phản ánh tương tự ở gần đây. Bạn có thể xác nhận "tôi cũng thấy" thay vì gửi mới.',
    'A similar report is open nearby. You can say "me too" instead of filing a new one.',
)
NOT_FOUND = error_code(
    "incident.not_found",
    404,
    "Không tìm thấy phản ánh.",
    "The incident was not found.",
)
NOT_OPEN = error_code(
    "incident.not_open",
    409,
    "Phản ánh này đã được xử lý xong hoặc đã bị từ chối.",
    "This incident is already closed or rejected.",
)
INVALID_TRANSITION = error_code(
    "incident.invalid_transition",
    409,
    'Không thể thực hiện thao tác "{action}" khi phản ánh đang ở trạng thái "{status}".',
    'The action "{action}" is not allowed while the incident is "{status}".',
)
DUPLICATE_TARGET_INVALID = error_code(
    "incident.duplicate_target_invalid",
    422,
    "Phản ánh gốc không hợp lệ (phải là một phản ánh khác, cùng địa bàn, chưa bị từ chối).",
    "The original incident is invalid (another incident of the same area, not rejected).",
)
MEDIA_INVALID = error_code(
    "incident.media_invalid",
    422,
    "Ảnh/video đính kèm không hợp lệ hoặc không thuộc về bạn.",
    "An attached photo or video is invalid or not yours.",
)
TOO_MANY_MEDIA = error_code(
    "incident.too_many_media",
    422,
    "Chỉ được đính kèm tối đa {limit} ảnh/video.",
    "At most {limit} photos or videos.",
)
INVALID_CURSOR = error_code(
    "incident.invalid_cursor",
    422,
    "Con trỏ phân trang không hợp lệ.",
    "The pagination cursor is invalid.",
)
RADIUS_TOO_LARGE = error_code(
    "incident.radius_too_large",
    422,
    "Bán kính tìm kiếm tối đa là {limit} m.",
    "The search radius is at most {limit} m.",
)
MEDIA_NOT_FOUND = error_code(
    "incident.media_not_found",
    404,
    "Không tìm thấy ảnh/video này trong phản ánh.",
    "This photo or video is not part of the incident.",
)
INVALID_MEDIA_ACTION = error_code(
    "incident.invalid_media_action",
    409,
    'Không thể "{action}" ảnh/video đang ở trạng thái "{visibility}".',
    'Cannot "{action}" a photo or video that is "{visibility}".',
)
