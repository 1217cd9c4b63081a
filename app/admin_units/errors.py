from app.core.errors import error_code

WARD_NOT_FOUND = error_code(
    "admin_units.ward_not_found",
    404,
    "Không tìm thấy phường/xã với mã đã cho.",
    "No ward or commune has this code.",
)
