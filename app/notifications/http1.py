"""A lean HTTP/1.1 client for firebase-admin's FCM calls.

firebase-admin's `send_each_async` puts a whole batch (up to 500 requests) in flight at once
through an `httpx.AsyncClient`. On our 2-core machines that stack costs more CPU than the rest of
a fan-out together: httpcore's pool re-scans every queued request against every connection on
each request and answer (quadratic in the batch), its anyio connections cost ~0.4 ms per
request, its HTTP/2 (the `h2` state machine) ~80 us, and httpx itself ~100 us (URL parsing,
header merging, cookie extraction, auth flow) for requests that are all alike.

`LeanClient` stands in for that `httpx.AsyncClient` under firebase-admin's own
`HttpxAsyncClient` (same `request()` call, real `httpx.Response` objects, `raise_for_status`),
so the library's message encoding, batch API, response parsing and error mapping run unchanged.
Under it, `Http1Pool` pipelines requests on a few keep-alive connections (RFC 9112 §9.3.2:
answers come back in order), the requests of one event-loop turn leave in one write, and
answers are parsed by httptools' C parser. FCM's v1 endpoint answers HTTP/1.1 as well as HTTP/2
(TLS with ALPN `http/1.1` for https:// URLs). A connection that fails fails the requests
pipelined on it; for FCM they become retry jobs (delivery is at least once; collapse keys
absorb a repeat).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import httpx
import orjson

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
WATCHDOG_SECONDS = 1.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection with up to `depth` pipelined requests awaiting answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = True
        self.pending: deque[asyncio.Future[Answer]] = deque()
        self.deadlines: deque[float] = deque()  # of the pending requests, oldest first
        self._watchdog: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(httpx.RemoteProtocolError("server closed the connection"), close=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers, self._body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self.pending:
            answer = self.pending.popleft()
            self.deadlines.popleft()
            if not answer.done():
                answer.set_result(
                    (self.parser.get_status_code(), self._headers, b"".join(self._body))
                )

    # ours
    def request(self, raw: bytes, within: float | None) -> asyncio.Future[Answer]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self.pending.append(answer)
        self.deadlines.append(loop.time() + within if within else float("inf"))
        if not self._out:
            # The requests of this event-loop turn leave together, in one write.
            loop.call_soon(self._flush)
        self._out.append(raw)
        if self._watchdog is None:
            self._watchdog = loop.call_later(WATCHDOG_SECONDS, self._check_deadlines)
        return answer

    def _check_deadlines(self) -> None:
        """Once a second while requests are pending (a timer per connection, not per request):
        an answer overdue means the answers behind it are too; the connection goes."""
        self._watchdog = None
        if not self.pending:
            return
        if self.deadlines[0] <= asyncio.get_running_loop().time():
            self.fail(httpx.ReadTimeout("no answer in time"))
            return
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(WATCHDOG_SECONDS, self._check_deadlines)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    def fail(self, exc: Exception, *, close: bool = True) -> None:
        """Every request still waiting on this connection fails with `exc`."""
        self.closed = True
        pending, self.pending, self.deadlines = self.pending, deque(), deque()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for answer in pending:
            if not answer.done():
                answer.set_exception(exc)
        if close and self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Up to `max_connections` keep-alive connections to one origin, each with up to `depth`
    pipelined requests; beyond that, requests wait in FIFO order."""

    def __init__(self, max_connections: int, depth: int = 100) -> None:
        self.max_connections = max_connections
        self.depth = depth
        self._conns: list[_Connection] = []
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def _connect(self, url: httpx.URL, within: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        secure = url.scheme == "https"
        port = url.port or (443 if secure else 80)
        self._connecting += 1
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    _Connection,
                    url.host,
                    port,
                    ssl=self._ssl_context() if secure else None,
                    server_hostname=url.host if secure else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {url.host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {url.host}:{port}: {exc}") from exc
        finally:
            self._connecting -= 1
            self._wake_all()  # a new connection has room for many; a failed one frees a slot
        self._conns.append(conn)
        return conn

    def _pick(self) -> _Connection | None:
        """The least busy usable connection with room, or None."""
        best: _Connection | None = None
        for conn in list(self._conns):
            if conn.closed or not conn.reusable:
                if not conn.pending:
                    self._conns.remove(conn)
                    conn.fail(httpx.RemoteProtocolError("connection retired"))
                continue
            if len(conn.pending) < self.depth and (
                best is None or len(conn.pending) < len(best.pending)
            ):
                best = conn
                if not conn.pending:
                    break
        return best

    def _room(self) -> bool:
        return len(self._conns) + self._connecting < self.max_connections

    async def _acquire(self, url: httpx.URL, within: float | None) -> _Connection:
        """An idle connection, else a new one while under the limit, else the least busy one
        with room, else wait for room."""
        while True:
            conn = self._pick()
            room = self._room()
            if conn is not None and (not conn.pending or not room):
                return conn
            if room:
                return await self._connect(url, within)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def round_trip(self, url: httpx.URL, raw: bytes, within: float | None) -> Answer:
        """Send one encoded request to `url`'s origin; its status, headers and body. The read
        deadline is kept by the connection's watchdog (to the second)."""
        conn = self._pick()
        if conn is None or (conn.pending and self._room()):
            try:
                async with asyncio.timeout(within):
                    conn = await self._acquire(url, within)
            except TimeoutError as exc:
                raise httpx.PoolTimeout("no connection free in time") from exc
        answer = conn.request(raw, within)
        try:
            return await answer
        except httpx.TransportError:
            raise
        except BaseException:
            conn.fail(httpx.RemoteProtocolError("a pipelined request was abandoned"))
            raise
        finally:
            self._wake_one()

    async def aclose(self) -> None:
        for conn in self._conns:
            conn.fail(httpx.RemoteProtocolError("pool closed"))
        self._conns.clear()
        self._wake_all()


class LeanClient:
    """The part of `httpx.AsyncClient` firebase-admin's `HttpxAsyncClient` uses: `request()`
    (JSON body, extra headers, timeout) answering a real `httpx.Response`, and `aclose()`.

    `token` gives the bearer token; `refresh(stale)` a newer one after a 401 about the token
    itself (not FCM's THIRD_PARTY_AUTH_ERROR, about APNs/web push credentials, which carries an
    `errorCode`): one refresh and one retry, as firebase-admin's own auth flow does.
    """

    def __init__(
        self,
        pool: Http1Pool,
        headers: dict[str, str],
        token: Callable[[], Awaitable[str]],
        refresh: Callable[[str], Awaitable[str]],
    ) -> None:
        self.pool = pool
        self._fixed = b"".join(
            b"%s: %s\r\n" % (k.encode(), v.encode())
            for k, v in {"user-agent": "firebase-admin-python", **headers}.items()
        )
        self._token, self._refresh = token, refresh
        # Per URL: the parsed URL, the request line and Host header, and the `httpx.Request`
        # the answers point back to (for raise_for_status and error messages).
        self._urls: dict[str, tuple[httpx.URL, bytes, httpx.Request]] = {}

    def _target(self, method: str, url: str) -> tuple[httpx.URL, bytes, httpx.Request]:
        known = self._urls.get(url)
        if known is None:
            parsed = httpx.URL(url)
            host = parsed.netloc
            line = (method.upper().encode(), parsed.raw_path, host)
            head = b"%s %s HTTP/1.1\r\nhost: %s\r\n" % line
            known = (parsed, head, httpx.Request(method.upper(), parsed))
            if len(self._urls) < 64:
                self._urls[url] = known
        return known

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - firebase-admin's keyword
    ) -> httpx.Response:
        parsed, head, request = self._target(method, url)
        body = orjson.dumps(json) if json is not None else b""
        extra = b"".join(
            b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (headers or {}).items()
        )
        rest = b"%scontent-type: application/json; charset=UTF-8\r\ncontent-length: %d\r\n" % (
            self._fixed + extra,
            len(body),
        )
        token = await self._token()
        status, answer_headers, content = await self._send(parsed, head, rest, token, body, timeout)
        if status == 401 and b"errorCode" not in content:
            token = await self._refresh(token)
            status, answer_headers, content = await self._send(
                parsed, head, rest, token, body, timeout
            )
        return httpx.Response(
            status,
            headers=answer_headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _send(
        self,
        url: httpx.URL,
        head: bytes,
        rest: bytes,
        token: str,
        body: bytes,
        within: float | None,
    ) -> Answer:
        raw = b"%sauthorization: Bearer %s\r\n%s\r\n%s" % (head, token.encode(), rest, body)
        return await self.pool.round_trip(url, raw, within)

    async def aclose(self) -> None:
        await self.pool.aclose()
