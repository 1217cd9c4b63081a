"""Assertions on RFC 9457 problem responses."""

from __future__ import annotations

from typing import Any

import httpx

from app.core import errors

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is `application/problem+json` with our shape, this status and this code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == errors.PROBLEM_JSON
    assert response.headers["content-language"] in ("vi", "en")
    assert "accept-language" in response.headers.get("vary", "").lower()
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == errors.PROBLEM_TYPE_BASE + code
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body
