from __future__ import annotations

from datetime import date

import pytest

from app.identity.cccd import PROVINCE_CODES, check_cccd

TODAY = date(2026, 11, 25)


def test_province_list_has_the_63_codes_including_thai_nguyen_and_bac_kan():
    assert len(PROVINCE_CODES) == 63
    assert PROVINCE_CODES["019"] == "Thái Nguyên"
    assert PROVINCE_CODES["006"] == "Bắc Kạn"


@pytest.mark.parametrize(
    ("number", "gender", "born"),
    [
        ("019090001234", "male", date(1990, 3, 1)),
        ("019185123456", "female", date(1985, 7, 9)),
        ("006303000001", "female", date(2003, 1, 1)),
        ("019205999999", "male", date(2005, 12, 31)),
    ],
)
def test_consistent_numbers_pass(number, gender, born):
    assert check_cccd(number, gender=gender, date_of_birth=born, today=TODAY) is None


@pytest.mark.parametrize(
    ("number", "gender", "born", "problem"),
    [
        ("01909000123", "male", date(1990, 1, 1), "format"),
        ("01909000123a", "male", date(1990, 1, 1), "format"),
        ("003090001234", "male", date(1990, 1, 1), "province"),
        ("099090001234", "male", date(1990, 1, 1), "province"),
        ("019190001234", "male", date(1990, 1, 1), "gender_mismatch"),
        ("019090001234", "female", date(1990, 1, 1), "gender_mismatch"),
        ("019290001234", "male", date(1990, 1, 1), "century_mismatch"),
        ("019091001234", "male", date(1990, 1, 1), "year_mismatch"),
        ("019227001234", "male", date(2027, 1, 1), "future_birth"),
    ],
)
def test_inconsistent_numbers_fail_with_their_reason(number, gender, born, problem):
    assert check_cccd(number, gender=gender, date_of_birth=born, today=TODAY) == problem
