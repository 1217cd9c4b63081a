"""Validation of the 12-digit Citizen Identity Card (CCCD) number, with a reason for each failure.

Structure (Circular 59/2021/TT-BCA): 3-digit province code of birth registration, one digit for
gender and century (0/1 male/female 1900s, 2/3 2000s, 4/5 2100s, 6/7 2200s, 8/9 2300s), two digits
of the birth year, six random digits.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

Gender = Literal["male", "female"]

# The 63 province codes of Circular 59/2021/TT-BCA (still on every card issued; the 2025 merger
# into 34 provinces did not renumber citizens).
PROVINCE_CODES: dict[str, str] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu",
    "079": "Hồ Chí Minh",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

CccdProblem = Literal[
    "format",
    "province",
    "gender_century",
    "gender_mismatch",
    "century_mismatch",
    "year_mismatch",
    "future_birth",
]


def check_cccd(
    number: str, *, gender: Gender, date_of_birth: date, today: date
) -> CccdProblem | None:
    """None when the number agrees with itself and with the declared gender and birth date."""
    if len(number) != 12 or not number.isdigit():
        return "format"
    if number[:3] not in PROVINCE_CODES:
        return "province"
    if date_of_birth > today:
        return "future_birth"
    digit = int(number[3])
    century = 1900 + 100 * (digit // 2)
    if century > 2300:
        return "gender_century"
    digit_gender: Gender = "male" if digit % 2 == 0 else "female"
    if digit_gender != gender:
        return "gender_mismatch"
    if not century <= date_of_birth.year < century + 100:
        return "century_mismatch"
    if number[4:6] != f"{date_of_birth.year % 100:02d}":
        return "year_mismatch"
    return None


def mask_cccd(number_last4: str) -> str:
    return "••••••••" + number_last4
