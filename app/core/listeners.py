"""Listening sockets for `python -m app serve`, one set per server process.

With several server processes (`serve --workers N`), uvicorn binds one socket in its supervisor
and every process accepts from it. Measured here with 50 keep-alive connections opened at once
to 2 processes: splits of 30/20, 33/17, 38/12, 29/21, 37/13, because asyncio accepts every
pending connection in one go and the first process to wake takes most of a burst. The process
with the larger share answers its connections that much later (a camera burst's tail latency).

So on systems with SO_REUSEPORT each server process listens on a socket of its own, all bound to
the same address, and the kernel spreads new connections over them by a hash of the connection's
addresses (what nginx's `reuseport` and gunicorn's `--reuse-port` do). uvicorn's supervisor is
kept (restarts, health pings, signals): the supervisor holds a `ReusePortSocket`, bound and never
listening (it reserves the address and gets no connections), and each process it spawns unpickles
it as a new socket of its own, bound the same way, on which uvicorn starts listening.
"""

from __future__ import annotations

import socket
from typing import Any

REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port, not yet listening, inheritable by server processes.

    With `reuse_port`, a plain bind first, as a check (closed at once): sockets that all set
    SO_REUSEPORT share an address, so without it a second `serve` started by mistake on a busy
    port would quietly take part of its connections instead of failing."""
    if reuse_port:
        _bound(socket.socket, host, port).close()
    sock = _bound(ReusePortSocket if reuse_port else socket.socket, host, port)
    sock.set_inheritable(True)
    return sock


class ReusePortSocket(socket.socket):
    """A SO_REUSEPORT socket that a spawned process receives as a fresh socket bound to the same
    address, instead of a duplicate of this one (see the module docstring)."""

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return _bound, (socket.socket, host, port, True)


def _bound(
    kind: type[socket.socket], host: str, port: int, reuse_port: bool = False
) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = kind(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port or kind is ReusePortSocket:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
