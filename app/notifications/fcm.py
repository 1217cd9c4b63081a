"""FCM delivery through firebase-admin's async batch API (`send_each_async`, ≤500 per call).

Four adjustments to the library, all through its (private, pinned <8) service object:
- the send URL is built from FCM_BASE_URL, so a local fake FCM v1 server can stand in for Google;
  the OAuth token endpoint is the service account's own `token_uri`;
- the library's in-call retries (up to 4, on 500/503, ignoring Retry-After, sleeping inside the
  job) are switched off: our retries are persistent jobs that honour Retry-After, add jitter and
  survive a worker restart (see `delivery.py`);
- the OAuth token is refreshed in a thread before a batch: google-auth refreshes synchronously
  with `requests`, which would otherwise block the event loop once an hour;
- the httpx client under its `HttpxAsyncClient` is our lean pipelined HTTP/1.1 client
  (`http1.py`): httpx and httpcore under a 500-request batch cost more CPU than everything
  else in a fan-out. `FCM_HTTP_CLIENT=library` keeps the library's own httpx (HTTP/2) client.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from firebase_admin import _http_client as fb_http
from firebase_admin import _retry as fb_retry
from firebase_admin import credentials, exceptions, messaging

from app.core.logging import get_logger
from app.notifications.backends import Outcome
from app.notifications.config import NotificationSettings
from app.notifications.http1 import Http1Pool, LeanClient

log = get_logger("notifications.fcm")

RETRYABLE = (
    exceptions.UnavailableError,
    exceptions.InternalError,
    exceptions.DeadlineExceededError,
    exceptions.ResourceExhaustedError,
    exceptions.UnknownError,
    messaging.QuotaExceededError,
)


def _retry_after(exc: exceptions.FirebaseError) -> float | None:
    response = exc.http_response
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: our own back-off applies


def _error_code(exc: exceptions.FirebaseError) -> str:
    response = exc.http_response
    if response is not None:
        try:
            body = response.json()
            for detail in body.get("error", {}).get("details", []):
                if detail.get("errorCode"):
                    return str(detail["errorCode"])
        except (ValueError, AttributeError):
            pass
    return str(exc.code).upper()


def classify(exc: exceptions.FirebaseError) -> Outcome:
    """FCM's answer for one token, as what we do next."""
    code, message = _error_code(exc), str(exc)[:500]
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return Outcome("unregistered", error_code=code, error_message=message)
    if isinstance(exc, exceptions.InvalidArgumentError):
        # INVALID_ARGUMENT is also FCM's answer to a bad payload: only a bad token is removed.
        if "registration token" in message.lower():
            return Outcome("invalid", error_code=code, error_message=message)
        return Outcome("failed", error_code=code, error_message=message)
    if isinstance(exc, RETRYABLE):
        return Outcome(
            "retry", error_code=code, error_message=message, retry_after=_retry_after(exc)
        )
    return Outcome("failed", error_code=code, error_message=message)


class FcmBackend:
    name = "fcm"

    def __init__(self, settings: NotificationSettings) -> None:
        if settings.fcm_credentials_file is None:
            raise RuntimeError("PUSH_BACKEND=fcm needs FCM_CREDENTIALS_FILE")
        certificate = credentials.Certificate(str(settings.fcm_credentials_file))
        project = settings.fcm_project_id or certificate.project_id
        self.batch_size = settings.push_batch_size
        self.app = firebase_admin.initialize_app(
            certificate,
            {"projectId": project, "httpTimeout": settings.fcm_timeout_seconds},
            name=f"push-{uuid.uuid4().hex}",
        )
        service = messaging._get_messaging_service(self.app)
        base = settings.fcm_base_url.rstrip("/")
        service._fcm_url = f"{base}/v1/projects/{project}/messages:send"
        self._google_credential = service._credential
        service._async_client = self._client(settings)
        self._service = service
        self._refresh_lock = asyncio.Lock()

    def _client(self, settings: NotificationSettings) -> fb_http.HttpxAsyncClient:
        no_retry = fb_retry.HttpxRetry(max_retries=0)  # our retries are jobs
        client = fb_http.HttpxAsyncClient(
            credential=self._google_credential,
            timeout=int(settings.fcm_timeout_seconds),
            retry_config=no_retry,
        )
        library_client = client._async_client
        if settings.fcm_http_client == "library":
            # The operator's way back to the library's own HTTP/2 client (httpx), if a front
            # end ever misbehaves with pipelining: slower, but nothing of ours under it.
            limits = httpx.Limits(
                max_connections=settings.fcm_max_connections,
                max_keepalive_connections=settings.fcm_max_connections,
            )
            transport = fb_retry.HttpxRetryTransport(retry=no_retry, limits=limits)
            client._async_client = httpx.AsyncClient(
                http2=True,
                timeout=settings.fcm_timeout_seconds,
                headers=client._headers,
                auth=fb_http.GoogleAuthCredentialFlow(self._google_credential),
                mounts={"http://": transport, "https://": transport},
            )
        else:
            # The library's client with our HTTP layer under it (see http1.py), and a bearer
            # token that does not build a requests.Session per request as the library's
            # GoogleAuthCredentialFlow does.
            client._async_client = LeanClient(
                Http1Pool(settings.fcm_max_connections),
                headers=client._headers,
                token=self._ensure_token,
                refresh=lambda stale: self._ensure_token(stale=stale),
            )
        self._library_client = library_client
        return client

    async def _ensure_token(self, *, stale: str | None = None) -> str:
        """A valid access token; with `stale`, a newer one than that (it was refused)."""
        credential = self._google_credential
        if credential.valid and (stale is None or credential.token != stale):
            return str(credential.token)
        async with self._refresh_lock:
            if not credential.valid or (stale is not None and credential.token == stale):
                # google-auth refreshes synchronously with `requests`: off the event loop.
                request = google.auth.transport.requests.Request()
                await asyncio.to_thread(credential.refresh, request)
        return str(credential.token)

    async def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        """`send_each_async` calls of up to PUSH_BATCH_SIZE messages, all in flight at once (the
        connection pool, FCM_MAX_CONNECTIONS, is what bounds the requests on the wire)."""
        size = self.batch_size
        batches = [messages[start : start + size] for start in range(0, len(messages), size)]
        results = await asyncio.gather(*(self._send_batch(batch) for batch in batches))
        return [outcome for result in results for outcome in result]

    async def _send_batch(self, batch: list[messaging.Message]) -> list[Outcome]:
        try:
            await self._ensure_token()
            response = await messaging.send_each_async(batch, app=self.app)
        except (google.auth.exceptions.GoogleAuthError, exceptions.FirebaseError) as exc:
            # Without an access token nothing can be sent: the whole batch waits for a retry.
            log.warning("fcm_batch_failed", error=str(exc)[:300], size=len(batch))
            failure = Outcome("retry", error_code="AUTH_UNAVAILABLE", error_message=str(exc)[:500])
            return [failure] * len(batch)
        out: list[Outcome] = []
        for item in response.responses:
            if item.success:
                out.append(Outcome("sent", message_id=item.message_id))
            else:
                out.append(classify(item.exception))
        return out

    async def aclose(self) -> None:
        # The library's own close() calls asyncio.run(), impossible on a running loop: close the
        # client here, on its loop, and make the library's close a no-op.
        await self._service._async_client.aclose()
        await self._library_client.aclose()  # built by the library, never used
        self._service.close = lambda: None
        firebase_admin.delete_app(self.app)


def describe(outcomes: list[Outcome]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
