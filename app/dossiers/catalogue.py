"""The seeded catalogue: real commune-level procedures of the civil-status and certification
fields (Ministry of Justice), plus one province-level procedure to show routing.

Codes follow the National Database of Administrative Procedures; processing times, fees and
documents follow the published procedures (Law on Civil Status 2014, Decree 123/2015/ND-CP,
Decree 23/2015/ND-CP, Circular 85/2019/TT-BTC, Circular 226/2016/TT-BTC). A deployment checks them
against the portal and edits this list; `sync_catalogue` upserts it at start-up.
"""

from __future__ import annotations

from typing import Any

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
SCANS = [PDF, JPEG, PNG]
MB = 1024 * 1024

# "x-pii": encrypted at rest (app.dossiers.form_pii), as the account's own CCCD is.
CCCD = {
    "type": "string",
    "pattern": "^[0-9]{12}$",
    "description": "Số CCCD/định danh cá nhân",
    "x-pii": "cccd",
}
NAME = {"type": "string", "minLength": 2, "maxLength": 100}
GENDER = {"type": "string", "enum": ["male", "female"]}
DATE = {"type": "string", "format": "date"}
PERSON = {
    "type": "object",
    "required": ["full_name", "cccd"],
    "properties": {"full_name": NAME, "cccd": CCCD, "date_of_birth": DATE},
    "additionalProperties": False,
}


def doc(
    code: str,
    vi: str,
    en: str,
    *,
    required: bool = True,
    formats: list[str] | None = None,
    max_bytes: int = 5 * MB,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": vi,
        "name_en": en,
        "required": required,
        "formats": formats or SCANS,
        "max_bytes": max_bytes,
    }


def form(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


PROCEDURES: list[dict[str, Any]] = [
    {
        "code": "1.001193",
        "name": "Đăng ký khai sinh",
        "name_en": "Birth registration",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "full",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 0,
        "fee_note": "Miễn lệ phí khi đăng ký đúng hạn (Luật Hộ tịch, Điều 11).",
        "documents": [
            doc("giay_chung_sinh", "Giấy chứng sinh", "Medical birth certificate"),
            doc(
                "van_ban_uy_quyen",
                "Văn bản ủy quyền (nếu nộp thay)",
                "Power of attorney (when filing for someone else)",
                required=False,
            ),
        ],
        "form_schema": form(
            ["child", "mother", "applicant_relation"],
            {
                "child": {
                    "type": "object",
                    "required": ["full_name", "gender", "date_of_birth", "place_of_birth"],
                    "properties": {
                        "full_name": NAME,
                        "gender": GENDER,
                        "date_of_birth": DATE,
                        "place_of_birth": {"type": "string", "minLength": 2, "maxLength": 300},
                        "ethnicity": {"type": "string", "maxLength": 50},
                        "nationality": {"type": "string", "maxLength": 50},
                    },
                    "additionalProperties": False,
                },
                "mother": PERSON,
                "father": PERSON,
                "applicant_relation": {
                    "type": "string",
                    "enum": ["mother", "father", "grandparent", "relative", "authorised"],
                },
            },
        ),
    },
    {
        "code": "1.000656",
        "name": "Đăng ký khai tử",
        "name_en": "Death registration",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "full",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 0,
        "fee_note": "Miễn lệ phí khi đăng ký đúng hạn.",
        "documents": [
            doc(
                "giay_bao_tu",
                "Giấy báo tử hoặc giấy tờ thay giấy báo tử",
                "Death notice or an equivalent document",
            ),
        ],
        "form_schema": form(
            ["deceased", "date_of_death", "place_of_death", "cause"],
            {
                "deceased": PERSON,
                "date_of_death": DATE,
                "place_of_death": {"type": "string", "minLength": 2, "maxLength": 300},
                "cause": {"type": "string", "maxLength": 300},
            },
        ),
    },
    {
        "code": "1.000894",
        "name": "Đăng ký kết hôn",
        "name_en": "Marriage registration",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "partial",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 0,
        "fee_note": "Miễn lệ phí đăng ký kết hôn trong nước. Hai bên có mặt khi nhận Giấy "
        "chứng nhận kết hôn.",
        "documents": [
            doc(
                "xac_nhan_hon_nhan",
                "Giấy xác nhận tình trạng hôn nhân (nếu cư trú nơi khác)",
                "Confirmation of marital status (if living elsewhere)",
                required=False,
            ),
        ],
        "form_schema": form(["bride", "groom"], {"bride": PERSON, "groom": PERSON}),
    },
    {
        "code": "1.004873",
        "name": "Cấp Giấy xác nhận tình trạng hôn nhân",
        "name_en": "Confirmation of marital status",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "full",
        "competent_level": "ward",
        "processing_days": 3,
        "fee_vnd": 0,
        "fee_note": "Mức lệ phí theo Nghị quyết của HĐND tỉnh.",
        "documents": [
            doc(
                "ban_an_ly_hon",
                "Bản án/quyết định ly hôn hoặc giấy chứng tử của vợ/chồng (nếu có)",
                "Divorce ruling or spouse's death certificate (if any)",
                required=False,
            ),
        ],
        "form_schema": form(
            ["person", "purpose", "marital_status"],
            {
                "person": PERSON,
                "purpose": {"type": "string", "minLength": 2, "maxLength": 300},
                "marital_status": {
                    "type": "string",
                    "enum": ["single", "divorced", "widowed", "married"],
                },
            },
        ),
    },
    {
        "code": "2.000815",
        "name": "Chứng thực bản sao từ bản chính giấy tờ, văn bản",
        "name_en": "Certified copy from an original document",
        "field": "Chứng thực",
        "field_en": "Certification",
        "online_level": "partial",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 2000,
        "fee_note": "2.000 đồng/trang; từ trang thứ ba 1.000 đồng/trang, tối đa 200.000 đồng/bản "
        "(Thông tư 226/2016/TT-BTC).",
        "documents": [
            doc(
                "ban_chinh",
                "Bản chụp bản chính cần chứng thực",
                "Scan of the original to certify",
                max_bytes=10 * MB,
            )
        ],
        "form_schema": form(
            ["document_title", "copies", "pages"],
            {
                "document_title": {"type": "string", "minLength": 2, "maxLength": 200},
                "copies": {"type": "integer", "minimum": 1, "maximum": 20},
                "pages": {"type": "integer", "minimum": 1, "maximum": 500},
            },
        ),
    },
    {
        "code": "2.000884",
        "name": "Chứng thực chữ ký trong giấy tờ, văn bản",
        "name_en": "Certification of a signature",
        "field": "Chứng thực",
        "field_en": "Certification",
        "online_level": "partial",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 10000,
        "fee_note": "10.000 đồng/trường hợp (Thông tư 226/2016/TT-BTC).",
        "documents": [
            doc(
                "van_ban",
                "Giấy tờ, văn bản cần chứng thực chữ ký",
                "The document whose signature is certified",
                formats=[PDF],
            )
        ],
        "form_schema": form(
            ["signer", "document_title"],
            {
                "signer": PERSON,
                "document_title": {"type": "string", "minLength": 2, "maxLength": 200},
            },
        ),
    },
    {
        "code": "2.000635",
        "name": "Cấp bản sao Trích lục hộ tịch",
        "name_en": "Copy of a civil-status extract",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "full",
        "competent_level": "ward",
        "processing_days": 1,
        "fee_vnd": 8000,
        "fee_note": "8.000 đồng/bản sao (Thông tư 281/2016/TT-BTC).",
        "documents": [],
        "form_schema": form(
            ["event", "person", "copies"],
            {
                "event": {"type": "string", "enum": ["birth", "death", "marriage", "other"]},
                "person": PERSON,
                "copies": {"type": "integer", "minimum": 1, "maximum": 10},
            },
        ),
    },
    {
        "code": "1.000689",
        "name": "Đăng ký nhận cha, mẹ, con",
        "name_en": "Recognition of a parent or child",
        "field": "Hộ tịch",
        "field_en": "Civil status",
        "online_level": "partial",
        "competent_level": "ward",
        "processing_days": 3,
        "fee_vnd": 0,
        "fee_note": "Theo Nghị quyết của HĐND tỉnh.",
        "documents": [
            doc(
                "chung_cu",
                "Chứng cứ chứng minh quan hệ cha, mẹ, con",
                "Evidence of the parent-child relationship",
            )
        ],
        "form_schema": form(["parent", "child"], {"parent": PERSON, "child": PERSON}),
    },
    {
        "code": "2.000488",
        "name": "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam",
        "name_en": "Judicial record certificate",
        "field": "Lý lịch tư pháp",
        "field_en": "Judicial records",
        "online_level": "full",
        "competent_level": "province",
        "processing_days": 10,
        "fee_vnd": 200000,
        "fee_note": "200.000 đồng/lần (Thông tư 244/2016/TT-BTC).",
        "documents": [
            doc("cccd", "Ảnh CCCD", "Photo of the citizen identity card", formats=[JPEG, PNG, PDF])
        ],
        "form_schema": form(
            ["person", "certificate_type", "purpose"],
            {
                "person": PERSON,
                "certificate_type": {"type": "integer", "enum": [1, 2]},
                "purpose": {"type": "string", "minLength": 2, "maxLength": 300},
            },
        ),
    },
]
