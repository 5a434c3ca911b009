# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal synchronous Redis client (RESP2 over one socket) and the bus's connection settings.

Why not redis-py here: modules run under whatever Python the target has (Debian's /usr/bin/python3 has no ``redis``),
and the DHCP hook runs on every lease renewal, where ``import redis`` alone costs about 0.3 s against 0.05 s for this
file. The EDA event source, which lives in the rulebook's venv, uses ``redis.asyncio``.

Supports ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) and ``unix:///path/to.sock?db=N``; a
password given separately wins over one in the URL. Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

REDIS_URL_ENV = "BM_REDIS_URL"
REDIS_PASSWORD_ENV = "BM_REDIS_PASSWORD"  # noqa: S105  (the name of a variable, not a password)
DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisError(Exception):
    """Base class of this client's errors."""


class RedisConnectionError(RedisError):
    """Redis could not be reached or did not answer in time."""


class RedisReplyError(RedisError):
    """Redis answered with an error reply (``-ERR ...``)."""


class RedisSettings:
    """Parsed connection settings; ``str()`` never shows the password."""

    def __init__(self, url: str | None = None, password: str | None = None, username: str | None = None) -> None:
        url = url or DEFAULT_URL
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"Redis URL must start with redis://, rediss:// or unix://, got {parts.scheme or '?'}://")
        query = parse_qs(parts.query)
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        try:
            self.port = parts.port or 6379
        except ValueError:
            raise ValueError("Redis URL has an invalid port") from None
        self.path = unquote(parts.path) if parts.scheme == "unix" else ""
        db_text = query.get("db", [""])[0] if parts.scheme == "unix" else parts.path.lstrip("/")
        if db_text and not db_text.isdigit():
            raise ValueError(f"Redis database must be a number, got {db_text!r}")
        self.db = int(db_text or 0)
        self.username = username or (unquote(parts.username) if parts.username else None)
        self.password = password or (unquote(parts.password) if parts.password else None)
        self._url = url

    def redacted(self) -> str:
        """The URL with any password replaced by ``***``."""
        parts = urlsplit(self._url)
        if parts.password is None:
            return self._url
        user = quote(parts.username or "")
        netloc = f"{user}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def __repr__(self) -> str:
        return f"RedisSettings({self.redacted()!r})"

    __str__ = redacted


Reply = Any  # bytes | int | str | None | list[Reply] | RedisReplyError


class RedisClient:
    """One connection, opened lazily. ``timeout`` bounds each network operation; ``deadline`` (a ``time.monotonic()``
    value) bounds all of them together."""

    def __init__(self, settings: RedisSettings, timeout: float = 5.0, deadline: float | None = None) -> None:
        self.settings = settings
        self.timeout = timeout
        self.deadline = deadline
        self._sock: socket.socket | None = None
        self._file: Any = None

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._file = None

    def _budget(self) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RedisConnectionError("Redis deadline passed")
        return min(self.timeout, left)

    def _connect(self) -> None:
        s = self.settings
        try:
            if s.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._budget())
                sock.connect(s.path)
            else:
                sock = socket.create_connection((s.host, s.port), timeout=self._budget())
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if s.scheme == "rediss":
                    import ssl  # noqa: PLC0415  (only for TLS: keeps the DHCP hook's start-up cheap)

                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=s.host)
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to {s}: {exc}") from None
        self._sock = sock
        self._file = sock.makefile("rb")
        hello: list[tuple[Any, ...]] = []
        if s.password is not None:
            hello.append(("AUTH", s.username, s.password) if s.username else ("AUTH", s.password))
        if s.db:
            hello.append(("SELECT", s.db))
        if hello:
            for reply in self._roundtrip(hello):
                if isinstance(reply, RedisReplyError):
                    self.close()
                    # Never echo the AUTH command: the reply text alone is safe.
                    raise RedisReplyError(f"Redis refused the connection setup: {reply}")

    @staticmethod
    def _encode(args: tuple[Any, ...]) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            if isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, str):
                data = arg.encode("utf-8")
            elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
                data = repr(arg).encode("ascii")
            else:
                raise TypeError(f"cannot send {type(arg).__name__} to Redis")
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def _read(self) -> Reply:  # noqa: PLR0911  (one return per RESP type)
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisConnectionError("connection closed by Redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RedisReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise RedisConnectionError("connection closed by Redis")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._read() for _item in range(count)]
        raise RedisConnectionError(f"unexpected reply from Redis: {line[:32]!r}")

    def _roundtrip(self, commands: list[tuple[Any, ...]]) -> list[Reply]:
        if self._sock is None:
            raise RedisConnectionError("not connected")
        try:
            self._sock.settimeout(self._budget())
            self._sock.sendall(b"".join(self._encode(c) for c in commands))
            replies = []
            for _command in commands:
                self._sock.settimeout(self._budget())
                replies.append(self._read())
            return replies
        except (OSError, ValueError) as exc:
            self.close()
            raise RedisConnectionError(f"Redis at {self.settings} did not answer: {exc}") from None

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Reply]:
        """Send ``commands`` in one write, return one reply each; error replies come back as ``RedisReplyError``
        objects (not raised), including inside an ``EXEC`` array."""
        if self._sock is None:
            self._connect()
        return self._roundtrip(commands)

    def call(self, *args: Any) -> Reply:
        """One command; an error reply is raised."""
        reply = self.pipeline([args])[0]
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply


def text(value: Reply) -> str:
    """A bulk reply as text (invalid UTF-8 replaced)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def pairs(flat: list[Reply] | None) -> dict[str, Reply]:
    """``[k1, v1, k2, v2]`` (stream entry fields, XINFO replies) as a dict with text keys."""
    if not flat:
        return {}
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}
