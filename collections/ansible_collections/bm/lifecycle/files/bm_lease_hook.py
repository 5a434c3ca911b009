# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DHCP lease hook of bm-lifecycle: one home for what both DHCP servers' entry points share.

``dhcp_hook.py`` (ISC dhcpd's ``on commit``) and ``kea_hook.py`` (Kea's ``libdhcp_run_script.so``, through
``kea-hook.sh``) only turn what their server passes into ``(ip, mac, hostname)`` leases and call :func:`main`. This
module validates each lease (an invalid IP or MAC is logged and dropped; an invalid host name is logged and left out),
normalises the MAC, builds the ``dhcp_lease`` envelope (v1, see ``plugins/module_utils/_envelope.py``) and publishes it
to the Redis stream ``bm:events:dhcp_lease`` with a total time budget of at most 1 s. If Redis cannot be reached the
event is written to the spool directory instead, and for 5 s later calls go straight to the spool (an outage costs each
lease milliseconds, not the timeout). Every call first flushes the spool, oldest first, and publishes its own events
only once the spool is empty, so events keep their order. One call at a time holds the spool; a call of a burst that
finds it held queues its events there, and the holder publishes them before it exits (``hand_over``). Each event keeps
its ``event_id`` and an ``event_id`` is stored at most once (the dedupe key ``bm:dedupe:<event_id>`` under ``WATCH``,
as ``_redis_events.publish`` does), so an event whose publish timed out after Redis got it is not stored twice. It
always exits 0, whatever happens.

Why this file does not import the collection's module_utils: it runs with the DHCP server's system Python on every
lease, standard library only, and the server (ISC dhcpd) waits for it. Its start-up is the cost, so it imports only
modules built into the interpreter (no ``re``, ``json``, ``socket``, ``urllib``, ``ipaddress``, ``uuid``,
``datetime`` on the way of a lease: together they were most of the 50 ms a lease used to cost). What it repeats of
module_utils (the envelope's shape, MAC normalisation, the dedupe publish) is held to the originals by
``tests/unit/events/test_lease_hook.py`` (same answers on generated input, envelopes valid by ``_envelope.validate``).

Settings come from the environment, else from ``/etc/bm-lifecycle/dhcp-hook.conf`` (``KEY=value`` lines; path in
``BM_HOOK_CONFIG``): ``BM_REDIS_URL`` (``redis://[[user]:password@]host[:port][/db]``, ``rediss://``,
``unix:///path?db=N``), ``BM_REDIS_PASSWORD``, ``BM_HOOK_SPOOL`` (default ``/var/spool/bm-lifecycle/dhcp-hook``),
``BM_HOOK_TIMEOUT`` (seconds, at most 1.0, default 0.8), ``BM_HOOK_RETRY_AFTER`` (seconds of going straight to the
spool after a failure, default 5). Logs go to syslog (facility daemon, tag ``bm-dhcp-hook``) when ``/dev/log`` exists,
else to stderr. Secrets (the password) are never logged.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at start-up: only for the type checker
    from collections.abc import Callable
    from typing import Any

    Lease = tuple[str, str, str]  # ip, mac, host name ("" for none) as the DHCP server passes them

TAG = "bm-dhcp-hook"
DEFAULT_CONFIG = "/etc/bm-lifecycle/dhcp-hook.conf"
DEFAULT_SPOOL = "/var/spool/bm-lifecycle/dhcp-hook"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
SETTINGS = ("BM_REDIS_URL", "BM_REDIS_PASSWORD", "BM_HOOK_SPOOL", "BM_HOOK_TIMEOUT", "BM_HOOK_RETRY_AFTER")
MAX_TIMEOUT = 1.0
CIRCUIT_OPEN_S = 5.0
LOCK_WAIT_S = 0.2
FLUSH_CHUNK = 100
MAX_SPOOL_FILES = 50_000
MAX_LEASES = 64  # per call (Kea hands over every lease of a packet)
EVENT_TYPE = "dhcp_lease"
STREAM = "bm:events:" + EVENT_TYPE
DEDUPE_PREFIX = "bm:dedupe:"
DEDUPE_TTL = 7 * 24 * 3600
MAXLEN = 100_000
ENVELOPE_KEYS = ("causation_id", "data", "device", "event_id", "event_type", "source", "timestamp", "version")
_HEX = frozenset("0123456789abcdef")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def quietly(action: Callable[..., object], *args: Any) -> None:
    """``action(*args)``, an ``OSError`` ignored (contextlib.suppress, without importing contextlib)."""
    try:  # noqa: SIM105  (contextlib costs the hook start-up time)
        action(*args)
    except OSError:
        pass


class Log:
    """syslog if a syslog socket exists, else stderr; never raises."""

    def __init__(self) -> None:
        self.syslog: Any = None
        if os.path.exists("/dev/log"):
            try:
                import syslog  # noqa: PLC0415  (built in; only where there is a syslog)

                syslog.openlog(TAG, syslog.LOG_PID, syslog.LOG_DAEMON)
                self.syslog = syslog
            except Exception:  # noqa: S110  (logging must never stop the hook)
                pass

    def __call__(self, level: str, message: str) -> None:
        try:
            if self.syslog is not None:
                prio = {"error": self.syslog.LOG_ERR, "warning": self.syslog.LOG_WARNING}.get(
                    level, self.syslog.LOG_INFO
                )
                self.syslog.syslog(prio, message)
            else:
                sys.stderr.write(f"{TAG}[{os.getpid()}] {level}: {message}\n")
        except Exception:  # noqa: S110
            pass


def settings() -> dict[str, str]:
    """The settings file's ``KEY=value`` lines, overridden by the environment."""
    values: dict[str, str] = {}
    try:
        with open(os.environ.get("BM_HOOK_CONFIG", DEFAULT_CONFIG), encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError):
        text = ""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    for key in SETTINGS:
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


# --- validation (the rules of ipaddress.ip_address, _mac.normalize_mac and RFC 1123 host names) -----------------------


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def normalize_ip(text: str) -> str:
    """The canonical text of an IPv4 or IPv6 address; ``ValueError`` if it is none."""
    if ":" in text:  # IPv6 is rare in a DHCPv4 hook: the exact rules of ipaddress, paid only then
        import ipaddress  # noqa: PLC0415

        return str(ipaddress.ip_address(text))
    try:  # glibc's inet_pton takes exactly four decimal octets without leading zeros, as ipaddress does
        return _socket.inet_ntop(_socket.AF_INET, _socket.inet_pton(_socket.AF_INET, text))
    except OSError:
        raise ValueError(f"invalid IP address {_short(text)}") from None


def _mac_octets(value: str) -> bytes:
    text = value.strip().lower()
    if not text or any(c not in _HEX and c not in ":-." for c in text):
        if not text:
            reason = "empty"
        else:
            bad = sorted({c for c in text if c not in _HEX and c not in ":-."})
            reason = "characters other than hex digits and separators: " + "".join(bad)[:16]
        raise ValueError(f"invalid MAC address {_short(value)}: {reason}")
    for sep in ":-":
        groups = text.split(sep)
        if len(groups) == 6 and all(1 <= len(g) <= 2 and all(c in _HEX for c in g) for g in groups):
            return bytes(int(g, 16) for g in groups)
    groups = text.split(".")
    if len(groups) == 3 and all(len(g) == 4 and all(c in _HEX for c in g) for g in groups):
        return bytes.fromhex("".join(groups))
    if len(text) == 12 and all(c in _HEX for c in text):
        return bytes.fromhex(text)
    reason = "expected 6 groups joined by ':' or '-', 3 groups of 4 joined by '.', or 12 hex digits"
    raise ValueError(f"invalid MAC address {_short(value)}: {reason}")


def normalize_mac(value: str) -> str:
    """``94:40:c9:5e:07:b0`` from any spelling ``_mac.normalize_mac`` accepts; ``ValueError`` (its message) else."""
    return ":".join(f"{b:02x}" for b in _mac_octets(value))


def valid_hostname(name: str) -> bool:
    """An RFC 1123 host name: dot-separated labels of 1-63 letters, digits and inner hyphens, 253 characters at most,
    one trailing dot allowed."""
    if not 1 <= len(name) <= 253:
        return False
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    return all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(c in _LABEL for c in label)
        for label in labels
    )


# --- the envelope ---------------------------------------------------------------------------------------------------


def _json_str(value: str) -> str:
    """A JSON string literal, ASCII only (what json.dumps(ensure_ascii=True) writes)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _json_value(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


def new_event_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 UTC with microseconds, the envelope's format: ``2026-11-25T04:52:07.123456Z``."""
    us = (time.time_ns() if ns is None else ns) // 1000
    t = time.gmtime(us // 1_000_000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        f"{us % 1_000_000:06d}Z"
    )


class Event:
    """One ``dhcp_lease`` envelope: its id, what the log says about it, and its JSON text (keys sorted, compact)."""

    def __init__(self, event_id: str, raw: str, label: str) -> None:
        self.event_id = event_id
        self.raw = raw
        self.label = label


def lease_event(lease: Lease, source: str, log: Log) -> Event | None:
    """The envelope of one ``(ip, mac, hostname)`` lease, or None (logged) if the IP or the MAC is unusable."""
    ip_text, mac_text, host = lease[0].strip(), lease[1], lease[2].strip()
    try:
        ip = normalize_ip(ip_text)
    except ValueError:
        log("error", f"invalid IP address {ip_text[:64]!r}; nothing published")
        return None
    try:
        mac = normalize_mac(mac_text)
    except ValueError as exc:
        log("error", f"{exc}; nothing published")
        return None
    hostname: str | None = host or None
    if hostname and not valid_hostname(hostname):
        log("warning", f"invalid host name {hostname[:64]!r} from {mac}; published without it")
        hostname = None
    server = _socket.gethostname()
    event_id = new_event_id()
    data = (
        f'{{"dhcp_server":{_json_str(server)},"hostname":{_json_value(hostname)},"ip":{_json_str(ip)},'
        f'"mac":{_json_str(mac)}}}'
    )
    raw = (
        f'{{"causation_id":null,"data":{data},"device":null,"event_id":"{event_id}","event_type":"{EVENT_TYPE}",'
        f'"source":{_json_str(f"{source}@{server}"[:128])},"timestamp":"{timestamp()}","version":1}}'
    )
    return Event(event_id, raw, f"{mac} {ip}")


def spooled_event(text: str) -> Event:
    """An envelope read back from the spool; ``ValueError`` if it is not a ``dhcp_lease`` envelope this hook wrote."""
    import json  # noqa: PLC0415  (only when something was spooled: keeps a lease's start-up cheap)

    env = json.loads(text)
    if not isinstance(env, dict) or sorted(env) != list(ENVELOPE_KEYS):
        raise ValueError("not an event envelope")
    event_id, data = env["event_id"], env["data"]
    ok = (
        env["version"] == 1
        and env["event_type"] == EVENT_TYPE
        and isinstance(event_id, str)
        and len(event_id) == 36
        and all(c in _HEX or c == "-" for c in event_id)
        and isinstance(env["timestamp"], str)
        and isinstance(env["source"], str)
        and 0 < len(env["source"]) <= 128
        and env["causation_id"] is None
        and env["device"] is None
        and isinstance(data, dict)
        and isinstance(data.get("ip"), str)
        and isinstance(data.get("mac"), str)
    )
    if not ok:
        raise ValueError("not a dhcp_lease envelope")
    raw = json.dumps(env, sort_keys=True, separators=(",", ":"), allow_nan=False)  # ASCII: always sendable
    return Event(event_id, raw, f"{data['mac']} {data['ip']}")


# --- Redis ----------------------------------------------------------------------------------------------------------


class RedisError(Exception):
    """Redis could not be reached, did not answer in time, or refused; the event goes to the spool."""


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    out, i = bytearray(), 0
    raw = text.encode("utf-8")
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and all(chr(c) in "0123456789abcdefABCDEF" for c in raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


class RedisURL:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or ``unix:///path?db=N``; a password
    given separately wins over one in the URL. ``str()`` never shows the password."""

    def __init__(self, url: str | None, password: str | None = None) -> None:
        url = url or DEFAULT_URL
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("redis", "rediss", "unix"):
            raise RedisError(
                f"Redis URL must start with redis://, rediss:// or unix://, got {scheme if sep else '?'}://"
            )
        self.scheme = scheme
        rest = rest.partition("#")[0]
        rest, _q, query = rest.partition("?")
        cut = min((i for i in (rest.find("/"),) if i >= 0), default=len(rest))
        netloc, path = rest[:cut], rest[cut:]
        userinfo, _at, hostport = netloc.rpartition("@")
        user, has_password, url_password = userinfo.partition(":")
        if hostport.startswith("["):
            host, _b, port_text = hostport[1:].partition("]")
            port_text = port_text[1:] if port_text.startswith(":") else port_text
        else:
            host, _c, port_text = hostport.partition(":")
        if port_text and not (port_text.isdigit() and port_text.isascii() and int(port_text) <= 65535):
            raise RedisError("Redis URL has an invalid port")
        self.host = host.lower() or "127.0.0.1"
        self.port = int(port_text) if port_text else 6379
        self.path = _unquote(path) if scheme == "unix" else ""
        db_text = ""
        if scheme == "unix":
            for item in query.split("&"):
                key, _e, value = item.partition("=")
                if key == "db" and not db_text:
                    db_text = _unquote(value)
        else:
            db_text = path.lstrip("/")
        if db_text and not (db_text.isdigit() and db_text.isascii()):
            raise RedisError(f"Redis database must be a number, got {db_text[:16]!r}")
        self.db = int(db_text or 0)
        self.username = _unquote(user) if user else None
        self.password = password or (_unquote(url_password) if has_password and url_password else None)
        self.where = f"{scheme}://{self.path}" if scheme == "unix" else f"{scheme}://{hostport or self.host}{path}"

    def __str__(self) -> str:
        return self.where


class Redis:
    """One RESP2 connection over a raw socket; ``deadline`` (``time.monotonic()``) bounds everything it does."""

    def __init__(self, url: str | None, password: str | None, timeout: float, deadline: float) -> None:
        self.url_text, self.password = url, password
        self.url: RedisURL | str = "Redis"
        self.timeout = timeout
        self.deadline = deadline
        self.sock: Any = None
        self.buf = b""

    def budget(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RedisError(f"no answer from {self.url} in time")
        return min(self.timeout, left)

    def connect(self) -> None:
        u = self.url = RedisURL(self.url_text, self.password)
        try:
            if u.scheme == "unix":
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                self.sock = sock
                sock.settimeout(self.budget())
                sock.connect(u.path)
            elif u.scheme == "rediss":
                import socket  # noqa: PLC0415  (TLS wants socket.socket objects; only for rediss://)
                import ssl  # noqa: PLC0415

                plain = socket.create_connection((u.host, u.port), timeout=self.budget())
                self.sock = ssl.create_default_context().wrap_socket(plain, server_hostname=u.host)
            else:
                self.sock = self._tcp(u.host, u.port)
        except OSError as exc:
            self.close()
            raise RedisError(f"cannot connect to {u}: {exc}") from None
        hello: list[tuple[Any, ...]] = []
        if u.password is not None:
            hello.append(("AUTH", u.username, u.password) if u.username else ("AUTH", u.password))
        if u.db:
            hello.append(("SELECT", u.db))
        for reply in self.roundtrip(hello) if hello else ():
            if isinstance(reply, ReplyError):  # never echo the AUTH command: the reply text alone is safe
                raise RedisError(f"Redis refused the connection setup: {reply}")

    def _tcp(self, host: str, port: int) -> Any:
        error: OSError = OSError("no address")
        addresses: list[Any]
        for family in (_socket.AF_INET, _socket.AF_INET6):
            try:  # an address needs no resolver: getaddrinfo's first call costs a process about 8 ms (NSS set-up)
                _socket.inet_pton(family, host)
            except OSError:
                continue
            addresses = [(family, _socket.SOCK_STREAM, 0, "", (host, port))]
            break
        else:
            addresses = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)
        for family, kind, proto, _name, addr in addresses:
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.budget())
                sock.connect(addr)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def close(self) -> None:
        if self.sock is not None:
            quietly(self.sock.close)
        self.sock = None

    @staticmethod
    def encode(args: tuple[Any, ...]) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode("utf-8") if isinstance(arg, str) else str(arg).encode("ascii")
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def _fill(self) -> None:
        self.sock.settimeout(self.budget())
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RedisError("connection closed by Redis")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2 :]
                return line
            self._fill()

    def read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            return data
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.read() for _item in range(count)]
        raise RedisError(f"unexpected reply from Redis: {line[:32]!r}")

    def roundtrip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one write, return one reply each (error replies as ``ReplyError`` objects)."""
        try:
            if self.sock is None:
                self.connect()
            self.sock.settimeout(self.budget())
            self.sock.sendall(b"".join(self.encode(c) for c in commands))
            return [self.read() for _command in commands]
        except (OSError, ValueError) as exc:
            self.close()
            raise RedisError(f"Redis at {self.url} did not answer: {exc}") from None


class ReplyError(str):
    """An error reply of Redis (``-ERR ...``), returned in place of the command's reply."""


def publish(redis: Redis, events: list[Event], attempts: int = 10) -> list[str | None]:
    """Add each event to ``bm:events:dhcp_lease`` unless its ``event_id`` was stored before, in one transaction;
    the entry ids (None for an event stored before). Raises ``RedisError``."""
    keys = [DEDUPE_PREFIX + e.event_id for e in events]
    for _attempt in range(attempts):
        first = redis.roundtrip([("WATCH", *keys), *(("EXISTS", k) for k in keys), ("TYPE", STREAM)])
        problems = [r for r in first if isinstance(r, ReplyError)]
        if first[-1] not in ("stream", "none"):
            problems.append(ReplyError(f"{STREAM} holds a {first[-1]}, not a stream"))
        if problems:
            redis.roundtrip([("UNWATCH",)])
            raise RedisError(f"Redis refused the publish: {problems[0]}")
        seen = [bool(r) for r in first[1:-1]]
        tx: list[tuple[Any, ...]] = [("MULTI",)]
        for event, key, dup in zip(events, keys, seen, strict=True):
            if not dup:
                tx.append(("SET", key, STREAM, "EX", DEDUPE_TTL))
                tx.append(("XADD", STREAM, "MAXLEN", "~", MAXLEN, "*", "envelope", event.raw))
        tx.append(("EXEC",))
        out = redis.roundtrip(tx)
        executed = out[-1]
        if executed is None:  # a watched dedupe key changed: someone stored one of these ids; look again
            continue
        replies = [*out[:-1], *(executed if isinstance(executed, list) else [executed])]
        failed = [r for r in replies if isinstance(r, ReplyError)]
        if failed:
            raise RedisError(f"Redis refused the transaction: {failed[0]}")
        added = iter(executed[1::2])
        return [None if dup else next(added).decode("ascii", "replace") for dup in seen]
    raise RedisError(f"dedupe keys kept changing under us ({attempts} attempts)")


# --- the spool ------------------------------------------------------------------------------------------------------


class Spool:
    """One file per event, named so that sorting the names sorts by time of arrival."""

    def __init__(self, directory: str, retry_after: float = CIRCUIT_OPEN_S) -> None:
        self.dir = directory
        self.retry_after = retry_after
        self.down_marker = os.path.join(directory, ".redis-down")

    def ensure(self) -> None:
        os.makedirs(self.dir, mode=0o750, exist_ok=True)

    def files(self) -> list[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(".json") and len(n) > 5 and not n.startswith("."))

    def write(self, event: Event) -> None:
        self.ensure()
        if len(self.files()) >= MAX_SPOOL_FILES:
            raise OSError(errno.ENOSPC, f"spool holds {MAX_SPOOL_FILES} events already")
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{event.event_id}.json"
        tmp = os.path.join(self.dir, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, event.raw.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.dir, name))

    def circuit_open(self) -> bool:
        try:
            return time.time() - os.stat(self.down_marker).st_mtime < self.retry_after
        except OSError:
            return False

    def mark_down(self) -> None:
        try:
            self.ensure()
            os.close(os.open(self.down_marker, os.O_WRONLY | os.O_CREAT, 0o640))
            os.utime(self.down_marker)
        except OSError:
            pass

    def mark_up(self) -> None:
        quietly(os.unlink, self.down_marker)

    def lock(self, wait_s: float) -> int | None:
        """The open lock file, held (waiting at most ``wait_s``), or None if another call holds it; close it to
        release."""
        self.ensure()
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.005)


def flush(spool: Spool, redis: Redis, log: Log) -> int:
    """Publish spooled events oldest first; returns how many are left. Raises ``RedisError`` when Redis fails."""
    names = spool.files()
    done = 0
    for start in range(0, len(names), FLUSH_CHUNK):
        chunk = names[start : start + FLUSH_CHUNK]
        events, usable = [], []
        for name in chunk:
            path = os.path.join(spool.dir, name)
            try:
                with open(path, encoding="utf-8") as f:
                    events.append(spooled_event(f.read()))
                usable.append(path)
            except (OSError, ValueError) as exc:
                log("error", f"dropping unreadable spool file {name}: {exc}")
                quietly(os.rename, path, os.path.join(spool.dir, "." + name + ".bad"))
        if events:
            publish(redis, events)
        for path in usable:
            os.unlink(path)
        done += len(chunk)
        if time.monotonic() > redis.deadline - 0.1:
            break  # keep the DHCP server fast; the next call (or --flush) goes on
    if done:
        log("info", f"flushed {done} spooled event(s) to Redis")
    return len(names) - done


# --- one call -------------------------------------------------------------------------------------------------------


def run(leases: list[Lease], source: str, log: Log, flush_only: bool = False) -> None:
    """Publish the events of ``leases`` (or, with ``flush_only``, only flush the spool) as the module doc says."""
    conf = settings()
    try:
        timeout = min(MAX_TIMEOUT, max(0.05, float(conf.get("BM_HOOK_TIMEOUT", "0.8"))))
        retry_after = max(0.0, float(conf.get("BM_HOOK_RETRY_AFTER", str(CIRCUIT_OPEN_S))))
    except ValueError:
        timeout, retry_after = 0.8, CIRCUIT_OPEN_S
    deadline = time.monotonic() + (600 if flush_only else timeout)
    events = [e for e in (lease_event(lease, source, log) for lease in leases[:MAX_LEASES]) if e is not None]
    if not events and not flush_only:
        return
    spool = Spool(conf.get("BM_HOOK_SPOOL", DEFAULT_SPOOL), retry_after)
    if flush_only and not spool.files():
        return  # the flush timer's usual case: nothing waited, Redis need not be asked
    lock = spool.lock(600 if flush_only else LOCK_WAIT_S)
    if lock is None:
        # Another call holds the spool (a burst of leases): queue behind it. Then try the lock once more, so that
        # either we flush our events ourselves or the holder finds them when it lets go (see ``hand_over``).
        for event in events:
            spool.write(event)
            log("info", f"spooled {EVENT_TYPE} {event.label} behind a concurrent call")
        lock = spool.lock(0)
        if lock is None:
            return
        events = []
    if spool.circuit_open() and not flush_only:
        try:
            for event in events:
                spool.write(event)
                log("warning", f"spooled {EVENT_TYPE} {event.label} (Redis down)")
        finally:
            os.close(lock)
        return
    redis = Redis(conf.get("BM_REDIS_URL"), conf.get("BM_REDIS_PASSWORD"), timeout, deadline)
    try:
        hand_over(spool, redis, events, lock, log)
    finally:
        redis.close()


def hand_over(spool: Spool, redis: Redis, events: list[Event], lock: int, log: Log) -> None:
    """Deliver under the spool lock, release it, and take it back while events are left in the spool and time is.

    A call that found the lock held spools its events and then tries the lock once. If that try fails, the holder
    still had the lock, so the holder's look at the spool after letting go sees those events: no event waits for the
    next lease, however many calls arrive at once."""
    while True:
        try:
            deliver(spool, redis, events, log)
        except (RedisError, OSError) as exc:
            spool.mark_down()
            for event in events:
                spool.write(event)
            log("warning", f"Redis unavailable ({exc}); event(s) spooled in {spool.dir}")
            return
        finally:
            os.close(lock)
        if not spool.files() or time.monotonic() > redis.deadline - 0.1:
            return
        again = spool.lock(0)
        if again is None:
            return  # its holder looks at the spool when it lets go
        lock, events = again, []


def deliver(spool: Spool, redis: Redis, events: list[Event], log: Log) -> None:
    """Under the spool lock: flush the spool, then publish ``events`` (or spool them behind what is left)."""
    left = flush(spool, redis, log)
    if events and left:
        for event in events:
            spool.write(event)
        log("info", f"{len(events)} event(s) spooled behind {left} older one(s) still in {spool.dir}")
    elif events:
        entries = publish(redis, events)
        for event, entry in zip(events, entries, strict=True):
            log("info", f"published {EVENT_TYPE} {event.label} as {entry or 'a duplicate'}")
    spool.mark_up()


def main(collect: Callable[[Log], tuple[list[Lease], bool]], source: str) -> int:
    """Run one call of an entry point: ``collect`` turns what the DHCP server passed into ``(leases, flush_only)``.
    Always 0: the DHCP server must never see the hook fail."""
    log = Log()
    try:
        leases, flush_only = collect(log)
        run(leases, source, log, flush_only)
    except BaseException as exc:  # whatever happens, the DHCP server goes on
        log("error", f"{type(exc).__name__}: {exc}; event lost")
    return 0
