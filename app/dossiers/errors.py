from app.core.errors import error_code

PROCEDURE_NOT_FOUND = error_code(
    "dossier.procedure_not_found",
    404,
    "Không tìm thấy thủ tục hành chính.",
    "No such administrative procedure.",
)
DOSSIER_NOT_FOUND = error_code(
    "dossier.not_found",
    404,
    "Không tìm thấy hồ sơ.",
    "The dossier was not found.",
)
AGENCY_INVALID = error_code(
    "dossier.agency_invalid",
    422,
    "Phường/xã tiếp nhận không hợp lệ.",
    "The receiving ward or commune is not valid.",
)
FORM_INVALID = error_code(
    "dossier.form_invalid",
    422,
    "Tờ khai có thông tin chưa hợp lệ.",
    "Some fields of the form are not valid.",
)
DOCUMENT_MISSING = error_code(
    "dossier.document_missing",
    422,
    "Thiếu giấy tờ bắt buộc: {documents}.",
    "Required documents are missing: {documents}.",
)
DOCUMENT_UNKNOWN = error_code(
    "dossier.document_unknown",
    422,
    "Thủ tục này không có loại giấy tờ '{document}'.",
    "This procedure has no document kind '{document}'.",
)
ATTACHMENT_NOT_FOUND = error_code(
    "dossier.attachment_not_found",
    422,
    "Tệp đính kèm không tồn tại hoặc không phải của bạn.",
    "An attachment does not exist or is not yours.",
)
DOCUMENT_TYPE_NOT_ACCEPTED = error_code(
    "dossier.document_type_not_accepted",
    422,
    "Định dạng tệp không được chấp nhận cho giấy tờ '{document}'.",
    "This file format is not accepted for the document '{document}'.",
)
DOCUMENT_TOO_LARGE = error_code(
    "dossier.document_too_large",
    422,
    "Tệp cho giấy tờ '{document}' vượt quá dung lượng cho phép.",
    "The file for the document '{document}' is larger than allowed.",
)
IDEMPOTENCY_KEY_REQUIRED = error_code(
    "dossier.idempotency_key_required",
    400,
    "Thiếu header Idempotency-Key (mỗi hồ sơ một khóa mới, dùng lại khi gửi lại).",
    "The Idempotency-Key header is required (a new key per dossier, reused on retries).",
)
IDEMPOTENCY_KEY_INVALID = error_code(
    "dossier.idempotency_key_invalid",
    422,
    "Idempotency-Key phải có 8–200 ký tự in được.",
    "Idempotency-Key must be 8 to 200 printable characters.",
)
IDEMPOTENCY_KEY_REUSED = error_code(
    "dossier.idempotency_key_reused",
    422,
    "Idempotency-Key này đã được dùng cho một yêu cầu khác.",
    "This Idempotency-Key was already used for a different request.",
)
INVALID_TRANSITION = error_code(
    "dossier.invalid_transition",
    409,
    "Không thể thực hiện '{action}' khi hồ sơ đang ở trạng thái '{status}'.",
    "The action '{action}' is not allowed while the dossier is '{status}'.",
)
SUPPLEMENT_ALREADY_REQUESTED = error_code(
    "dossier.supplement_already_requested",
    409,
    "Hồ sơ chỉ được yêu cầu bổ sung một lần.",
    "A supplement may be requested only once per dossier.",
)
TRANSITION_INCOMPLETE = error_code(
    "dossier.transition_incomplete",
    422,
    "Thiếu thông tin cho thao tác '{action}'.",
    "The action '{action}' needs more information.",
)
ASSIGNEE_INVALID = error_code(
    "dossier.assignee_invalid",
    422,
    "Người được phân công không phải cán bộ của đơn vị tiếp nhận.",
    "The assignee is not staff of the receiving agency.",
)
RESULT_DOCUMENT_INVALID = error_code(
    "dossier.result_document_invalid",
    422,
    "Tệp kết quả không tồn tại hoặc không do bạn tải lên.",
    "The result document does not exist or was not uploaded by you.",
)
DUE_DATE_INVALID = error_code(
    "dossier.due_date_invalid",
    422,
    "Ngày hẹn mới phải là ngày làm việc sau ngày hẹn hiện tại.",
    "The new appointment date must be a working day after the current one.",
)
SUPPLEMENT_EMPTY = error_code(
    "dossier.supplement_empty",
    422,
    "Cần bổ sung tờ khai hoặc giấy tờ.",
    "A supplement needs form data or documents.",
)
ALREADY_RATED = error_code(
    "dossier.already_rated",
    409,
    "Hồ sơ đã được đánh giá.",
    "The dossier was already rated.",
)
CURSOR_INVALID = error_code(
    "dossier.cursor_invalid",
    422,
    "Con trỏ phân trang không hợp lệ.",
    "The cursor is not valid.",
)
SUPPLEMENT_PERIOD_EXPIRED = error_code(
    "dossier.supplement_period_expired",
    409,
    "Đã hết thời hạn bổ sung hồ sơ ({due}); hồ sơ sẽ bị dừng xử lý.",
    "The time allowed for the supplement ran out ({due}); processing will be stopped.",
)
