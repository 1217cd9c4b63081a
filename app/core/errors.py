"""Errors as RFC 9457 problem+json, with stable codes and Vietnamese/English messages.

Each domain declares its codes with `error_code(...)`; the registry is the single source of
`mobile_contracts/errors.json` (written by `python -m app openapi`, checked by a test).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from app.core.i18n import Language

PROBLEM_TYPE_BASE = "https://id.thainguyen.gov.vn/problems/"
PROBLEM_JSON = "application/problem+json"
RESERVED_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "code", "instance", "request_id"}
)


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    vi: str
    en: str

    def message(self, language: Language, params: dict[str, Any] | None = None) -> str:
        """The message with its `{placeholders}` filled; a missing value leaves the template as
        is rather than failing the answer."""
        text = self.vi if language == "vi" else self.en
        if params:
            with contextlib.suppress(KeyError, IndexError):
                return text.format(**params)
        return text


REGISTRY: dict[str, ErrorCode] = {}


def error_code(code: str, status: int, vi: str, en: str) -> ErrorCode:
    if code in REGISTRY and REGISTRY[code] != ErrorCode(code, status, vi, en):
        raise ValueError(f"error code {code} declared twice with different content")
    REGISTRY[code] = ErrorCode(code, status, vi, en)
    return REGISTRY[code]


@dataclass
class AppError(Exception):
    """Raise with a registered code; `params` fill `{placeholders}` in the messages."""

    error: ErrorCode
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Keep the request's writes even though it fails (e.g. a counted failed attempt).
    commit: bool = False

    def __str__(self) -> str:
        return self.error.code


class FieldError(BaseModel):
    field: str = Field(examples=["body.phone"])
    code: str = Field(examples=["value_error"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with our stable `code`."""

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "auth.invalid_credentials"])
    title: str = Field(examples=["Số điện thoại hoặc mật khẩu không đúng."])
    status: int = Field(examples=[401])
    detail: str = Field(examples=["Số điện thoại hoặc mật khẩu không đúng."])
    code: str = Field(examples=["auth.invalid_credentials"])
    instance: str | None = Field(default=None, examples=["/api/v1/auth/login"])
    request_id: str | None = None
    errors: list[FieldError] | None = None

    model_config = {"extra": "allow"}


def problem_body(
    err: ErrorCode,
    language: Language,
    *,
    params: dict[str, Any] | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message = err.message(language, params)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + err.code,
        "title": message,
        "status": err.status,
        "detail": message,
        "code": err.code,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if extra:
        # Domain details never overwrite the problem's own members (a dossier's "status" is not
        # the HTTP status).
        body.update({k: v for k, v in extra.items() if k not in RESERVED_MEMBERS})
    return body


def responses(*errors: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status with its problem codes as examples."""
    by_status: dict[int, list[ErrorCode]] = {}
    for err in errors:
        by_status.setdefault(err.status, []).append(err)
    out: dict[int | str, dict[str, Any]] = {}
    for status, errs in sorted(by_status.items()):
        out[status] = {
            "model": Problem,
            "description": ", ".join(e.code for e in errs),
            "content": {
                PROBLEM_JSON: {"examples": {e.code: {"value": problem_body(e, "vi")} for e in errs}}
            },
        }
    return out


# Codes every part of the service may answer with.
VALIDATION_FAILED = error_code(
    "request.validation_failed",
    422,
    "Dữ liệu gửi lên không hợp lệ.",
    "The request data is invalid.",
)
BAD_REQUEST = error_code(
    "request.bad_request",
    400,
    "Yêu cầu không hợp lệ.",
    "The request is malformed.",
)
MALFORMED_JSON = error_code(
    "request.malformed_json",
    400,
    "Nội dung yêu cầu không phải JSON hợp lệ.",
    "The request body is not valid JSON.",
)
BODY_TOO_LARGE = error_code(
    "request.body_too_large",
    413,
    "Nội dung yêu cầu quá lớn (tối đa {limit} byte).",
    "The request body is too large (at most {limit} bytes).",
)
NOT_FOUND = error_code(
    "http.not_found",
    404,
    "Không tìm thấy tài nguyên.",
    "The resource was not found.",
)
METHOD_NOT_ALLOWED = error_code(
    "http.method_not_allowed",
    405,
    "Phương thức không được hỗ trợ.",
    "The method is not allowed.",
)
UNSUPPORTED_MEDIA_TYPE = error_code(
    "http.unsupported_media_type",
    415,
    "Kiểu nội dung không được hỗ trợ.",
    "The content type is not supported.",
)
RATE_LIMITED = error_code(
    "request.rate_limited",
    429,
    "Bạn thao tác quá nhanh. Vui lòng thử lại sau {retry_after} giây.",
    "Too many requests. Please try again in {retry_after} seconds.",
)
INTERNAL = error_code(
    "internal.error",
    500,
    "Hệ thống gặp lỗi. Vui lòng thử lại sau.",
    "Something went wrong. Please try again later.",
)
UNAVAILABLE = error_code(
    "service.unavailable",
    503,
    "Dịch vụ tạm thời không sẵn sàng.",
    "The service is temporarily unavailable.",
)
UNAUTHENTICATED = error_code(
    "auth.unauthenticated",
    401,
    "Bạn cần đăng nhập.",
    "You need to sign in.",
)
TOKEN_INVALID = error_code(
    "auth.token_invalid",
    401,
    "Phiên đăng nhập không hợp lệ hoặc đã hết hạn.",
    "The access token is invalid or expired.",
)
FORBIDDEN = error_code(
    "auth.forbidden",
    403,
    "Bạn không có quyền thực hiện thao tác này.",
    "You are not allowed to do this.",
)
