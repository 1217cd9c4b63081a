"""Server-rendered pages of the provider: Vietnamese first, English second, no JavaScript needed,
usable on a phone, CSRF-protected forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.core.config import get_settings
from app.core.i18n import Language, negotiate
from app.core.security import constant_time_equals, keyed_hash, random_token

CSRF_COOKIE = "tnid_csrf"
SESSION_COOKIE = "tnid_op"

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

TEXT: dict[str, dict[Language, str]] = {
    "title_login": {"vi": "Đăng nhập Thai Nguyen ID", "en": "Sign in with Thai Nguyen ID"},
    "intro_login": {"vi": "để tiếp tục tới {client}", "en": "to continue to {client}"},
    "phone": {"vi": "Số điện thoại", "en": "Phone number"},
    "password": {"vi": "Mật khẩu", "en": "Password"},
    "sign_in": {"vi": "Đăng nhập", "en": "Sign in"},
    "title_consent": {"vi": "Cho phép truy cập", "en": "Allow access"},
    "intro_consent": {"vi": "{client} muốn được:", "en": "{client} would like to:"},
    "allow": {"vi": "Cho phép", "en": "Allow"},
    "deny": {"vi": "Từ chối", "en": "Deny"},
    "consent_note": {
        "vi": "Bạn có thể thu hồi quyền này bất cứ lúc nào trong mục Ứng dụng đã cho phép.",
        "en": "You can withdraw this at any time under Allowed apps.",
    },
    "scope_openid": {
        "vi": "Biết bạn là ai (mã định danh)",
        "en": "Know who you are (an identifier)",
    },
    "scope_profile": {
        "vi": "Xem họ tên, ngày sinh, giới tính",
        "en": "See your name, date of birth and gender",
    },
    "scope_phone": {"vi": "Xem số điện thoại", "en": "See your phone number"},
    "scope_address": {
        "vi": "Xem phường/xã và tỉnh nơi bạn sống",
        "en": "See your ward and province",
    },
    "scope_cccd": {
        "vi": "Xem số căn cước công dân (CCCD)",
        "en": "See your citizen ID (CCCD) number",
    },
    "scope_offline_access": {
        "vi": "Truy cập khi bạn không mở ứng dụng",
        "en": "Keep access while you are away",
    },
    "title_level": {"vi": "Cần mức định danh cao hơn", "en": "A higher identity level is needed"},
    "level_explain": {
        "vi": "{client} yêu cầu tài khoản định danh mức {required}; tài khoản của bạn đang ở mức "
        "{current}.",
        "en": "{client} requires identity level {required}; your account is at level {current}.",
    },
    "level_how_1": {
        "vi": "Để đạt mức 1: mở ứng dụng C-ThaiNguyen, vào Hồ sơ → Định danh và khai báo số CCCD, "
        "họ tên, ngày sinh, giới tính.",
        "en": "To reach level 1: open the C-ThaiNguyen app, go to Profile → Identity and declare "
        "your CCCD number, name, date of birth and gender.",
    },
    "level_how_2": {
        "vi": "Để đạt mức 2: mang CCCD tới bộ phận một cửa của phường/xã nơi bạn cư trú để cán bộ "
        "xác minh trực tiếp.",
        "en": "To reach level 2: bring your CCCD to the one-stop desk of your ward for staff to "
        "verify it in person.",
    },
    "back_to_app": {"vi": "Quay lại {client}", "en": "Back to {client}"},
    "title_error": {"vi": "Không thể tiếp tục", "en": "Cannot continue"},
    "csrf_failed": {
        "vi": "Phiên biểu mẫu đã hết hạn. Vui lòng thử lại từ ứng dụng.",
        "en": "The form expired. Please start again from the application.",
    },
    "request_expired": {
        "vi": "Yêu cầu đăng nhập đã hết hạn hoặc không hợp lệ.",
        "en": "The sign-in request has expired or is invalid.",
    },
    "title_logout": {"vi": "Đăng xuất", "en": "Sign out"},
    "logout_confirm": {
        "vi": "Bạn có muốn đăng xuất khỏi Thai Nguyen ID trên trình duyệt này?",
        "en": "Do you want to sign out of Thai Nguyen ID in this browser?",
    },
    "logout_done": {"vi": "Bạn đã đăng xuất.", "en": "You have signed out."},
    "other_lang": {"vi": "English", "en": "Tiếng Việt"},
}


def language(request: Request, ui_locales: str | None = None) -> Language:
    """`?lang=`, then the request's `ui_locales`, then Accept-Language; Vietnamese by default."""
    explicit = request.query_params.get("lang")
    if explicit in ("vi", "en"):
        return explicit  # type: ignore[return-value]
    for tag in (ui_locales or "").split():
        base = tag.lower().split("-")[0]
        if base in ("vi", "en"):
            return base  # type: ignore[return-value]
    return negotiate(request.headers.get("accept-language"))


def t(lang: Language, key: str, **params: Any) -> str:
    text = TEXT[key][lang]
    return text.format(**params) if params else text


def csrf_cookie(request: Request) -> tuple[str, bool]:
    value = request.cookies.get(CSRF_COOKIE)
    return (value, False) if value and len(value) >= 32 else (random_token("", 24), True)


def csrf_token(cookie: str, bound_to: str) -> str:
    return keyed_hash(f"{cookie}:{bound_to}", purpose="csrf")[:40]


def csrf_ok(request: Request, submitted: str | None, bound_to: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return constant_time_equals(csrf_token(cookie, bound_to), submitted)


def secure_cookies() -> bool:
    return get_settings().issuer.startswith("https://")


def render(
    request: Request,
    template: str,
    lang: Language,
    *,
    status: int = 200,
    csrf_bound_to: str | None = None,
    **context: Any,
) -> Response:
    cookie, new = csrf_cookie(request)
    other = "en" if lang == "vi" else "vi"
    query = dict(request.query_params)
    query["lang"] = other
    from urllib.parse import urlencode

    html = _env.get_template(template).render(
        lang=lang,
        t=lambda key, **p: t(lang, key, **p),
        csrf_token=csrf_token(cookie, csrf_bound_to) if csrf_bound_to else None,
        other_lang_url=f"{request.url.path}?{urlencode(query)}",
        **context,
    )
    response = HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self' http: https:; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
        },
    )
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(),
            path="/oauth",
        )
    return response
