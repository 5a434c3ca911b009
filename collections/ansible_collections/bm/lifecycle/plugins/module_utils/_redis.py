# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bus's Redis connection for modules and the validation webhook: settings and a client on redis-py.

``RedisSettings`` parses ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS, verified) and
``unix:///path/to.sock?db=N``; a password given separately wins over one in the URL, and ``str()`` never shows it.

``RedisClient`` is one redis-py connection (its protocol and TLS, opened lazily) that answers raw replies - bytes,
int, list, None - as Redis sends them, with no redis-py response parsing, so that stream entries and XINFO read the
same everywhere. ``pipeline`` sends commands in one round trip and gives error replies back as ``RedisReplyError``
objects, also inside an ``EXEC`` array; one connection means a ``WATCH`` holds until its ``EXEC``. The DHCP hook,
which runs with the DHCP server's system Python, has its own standard-library client; the EDA event source uses
``redis.asyncio``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

try:
    from redis import exceptions as redis_exceptions
    from redis.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
except ImportError:  # the module fails with a clear message when it needs Redis (RedisClient)
    HAS_REDIS = False
else:
    HAS_REDIS = True

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
    """One connection, opened on first use; ``timeout`` bounds each network operation."""

    def __init__(self, settings: RedisSettings, timeout: float = 5.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._conn: AbstractConnection | None = None

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    def _connection(self) -> AbstractConnection:
        if self._conn is not None:
            return self._conn
        if not HAS_REDIS:
            raise RedisError("the Python library redis (redis-py) is missing: install it in the playbook's Python")
        s = self.settings
        common: dict[str, Any] = {"db": s.db, "username": s.username, "password": s.password,
                                  "socket_timeout": self.timeout, "driver_info": None, "protocol": 2}  # fmt: skip
        conn: AbstractConnection
        if s.scheme == "unix":
            conn = UnixDomainSocketConnection(path=s.path, **common)  # type: ignore[abstract]
        elif s.scheme == "rediss":
            conn = SSLConnection(host=s.host, port=s.port, socket_connect_timeout=self.timeout,
                                 ssl_cert_reqs="required", ssl_check_hostname=True, **common)  # fmt: skip
        else:
            conn = Connection(host=s.host, port=s.port, socket_connect_timeout=self.timeout, **common)
        try:
            conn.connect()
        except redis_exceptions.AuthenticationError as exc:
            raise RedisReplyError(f"Redis refused the connection setup: {exc}") from None  # never the AUTH command
        except redis_exceptions.ResponseError as exc:
            raise RedisReplyError(f"Redis refused the connection setup: {exc}") from None
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
            raise RedisConnectionError(f"cannot connect to {s}: {exc}") from None
        self._conn = conn
        return conn

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Reply]:
        """Send ``commands`` in one write, return one reply each; error replies come back as ``RedisReplyError``
        objects (not raised), including inside an ``EXEC`` array."""
        conn = self._connection()
        replies: list[Reply] = []
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            for _command in commands:
                try:
                    replies.append(_raw(conn.read_response(disconnect_on_error=True)))
                except redis_exceptions.ResponseError as exc:
                    replies.append(RedisReplyError(str(exc)))
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
            self.close()
            raise RedisConnectionError(f"Redis at {self.settings} did not answer: {exc}") from None
        return replies

    def call(self, *args: Any) -> Reply:
        """One command; an error reply is raised."""
        reply = self.pipeline([args])[0]
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply


def _raw(reply: Any) -> Reply:
    """A reply with redis-py's error objects (in arrays) as ``RedisReplyError``."""
    if isinstance(reply, list):
        return [_raw(r) for r in reply]
    if isinstance(reply, redis_exceptions.ResponseError):
        return RedisReplyError(str(reply))
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
