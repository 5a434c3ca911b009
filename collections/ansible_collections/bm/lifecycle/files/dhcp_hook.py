# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ISC dhcpd ``on commit`` hook of bm-lifecycle: publish a ``dhcp_lease`` event to the Redis event bus.

Usage (see dhcpd-hook.conf next to this file; run it with Debian's /usr/bin/python3, standard library only)::

    python3 -S dhcp_hook.py IP MAC [HOSTNAME]     one lease; what dhcpd's execute() runs
    python3 -S dhcp_hook.py --flush               only flush the spool (for a timer, after a long Redis outage)

dhcpd waits for this program, so it always exits 0, fast, whatever happens: it validates its input (an invalid IP or
MAC is logged and dropped; an invalid host name is logged and left out), normalises the MAC (dhcpd's
``binary-to-ascii`` drops leading zeros), and publishes with a total time budget of at most 1 s. If Redis cannot be
reached the event is written to the spool directory instead, and for 5 s later calls go straight to the spool (so an
outage costs each lease milliseconds, not the timeout). Every call first flushes the spool, oldest first, and publishes
its own event only once the spool is empty, so events keep their order; each event keeps its ``event_id`` and the bus
stores an ``event_id`` at most once, so an event whose publish timed out after Redis got it is not stored twice.

Settings come from the environment, else from ``/etc/bm-lifecycle/dhcp-hook.conf`` (``KEY=value`` lines; path in
``BM_HOOK_CONFIG``): ``BM_REDIS_URL``, ``BM_REDIS_PASSWORD``, ``BM_HOOK_SPOOL`` (default
``/var/spool/bm-lifecycle/dhcp-hook``), ``BM_HOOK_TIMEOUT`` (seconds, at most 1.0, default 0.8),
``BM_HOOK_RETRY_AFTER`` (seconds of going straight to the spool after a failure, default 5).
Logs go to syslog (facility daemon, tag ``bm-dhcp-hook``) when ``/dev/log`` exists, else to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))  # the collections root holding ansible_collections/

from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import new_event, validate
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import (
    RedisClient,
    RedisError,
    RedisSettings,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import BusError, publish

TAG = "bm-dhcp-hook"
DEFAULT_CONFIG = "/etc/bm-lifecycle/dhcp-hook.conf"
DEFAULT_SPOOL = "/var/spool/bm-lifecycle/dhcp-hook"
MAX_TIMEOUT = 1.0
CIRCUIT_OPEN_S = 5.0
LOCK_WAIT_S = 0.2
FLUSH_CHUNK = 100
MAX_SPOOL_FILES = 50_000
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class Log:
    """syslog if a syslog socket exists, else stderr; never raises."""

    def __init__(self) -> None:
        self.syslog: Any = None
        if os.path.exists("/dev/log"):
            with contextlib.suppress(Exception):
                import syslog  # noqa: PLC0415

                syslog.openlog(TAG, syslog.LOG_PID, syslog.LOG_DAEMON)
                self.syslog = syslog

    def __call__(self, level: str, message: str) -> None:
        with contextlib.suppress(Exception):
            if self.syslog is not None:
                prio = {"error": self.syslog.LOG_ERR, "warning": self.syslog.LOG_WARNING}.get(
                    level, self.syslog.LOG_INFO
                )
                self.syslog.syslog(prio, message)
            else:
                sys.stderr.write(f"{TAG}[{os.getpid()}] {level}: {message}\n")


def settings() -> dict[str, str]:
    values: dict[str, str] = {}
    path = os.environ.get("BM_HOOK_CONFIG", DEFAULT_CONFIG)
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip().strip('"').strip("'")
    for key in ("BM_REDIS_URL", "BM_REDIS_PASSWORD", "BM_HOOK_SPOOL", "BM_HOOK_TIMEOUT", "BM_HOOK_RETRY_AFTER"):
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


def lease_event(argv: list[str], log: Log) -> dict[str, Any] | None:
    """The envelope for ``IP MAC [HOSTNAME]``, or None (logged) if the input is unusable."""
    if len(argv) < 2 or len(argv) > 3:
        log("error", f"usage: dhcp_hook.py IP MAC [HOSTNAME], got {len(argv)} argument(s); nothing published")
        return None
    ip_text, mac_text = argv[0].strip(), argv[1]
    hostname: str | None = argv[2].strip() if len(argv) == 3 else ""
    try:
        ip = str(ipaddress.ip_address(ip_text))
    except ValueError:
        log("error", f"invalid IP address {ip_text[:64]!r}; nothing published")
        return None
    try:
        mac = normalize_mac(mac_text)
    except MacError as exc:
        log("error", f"{exc}; nothing published")
        return None
    if hostname and not _HOSTNAME.match(hostname):
        log("warning", f"invalid host name {hostname[:64]!r} from {mac}; published without it")
        hostname = None
    server = socket.gethostname()
    data = {"ip": ip, "mac": mac, "hostname": hostname or None, "dhcp_server": server}
    return new_event("dhcp_lease", data, source=f"dhcpd@{server}"[:128])


class Spool:
    """One file per event, named so that sorting the names sorts by time of arrival."""

    def __init__(self, directory: str, retry_after: float = CIRCUIT_OPEN_S) -> None:
        self.dir = Path(directory)
        self.retry_after = retry_after
        self.down_marker = self.dir / ".redis-down"

    def ensure(self) -> None:
        self.dir.mkdir(mode=0o750, parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def write(self, envelope: dict[str, Any]) -> Path:
        self.ensure()
        if len(self.files()) >= MAX_SPOOL_FILES:
            raise OSError(errno.ENOSPC, f"spool holds {MAX_SPOOL_FILES} events already")
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{envelope['event_id']}.json"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(envelope, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.dir / name)
        return self.dir / name

    def circuit_open(self) -> bool:
        try:
            return time.time() - self.down_marker.stat().st_mtime < self.retry_after
        except OSError:
            return False

    def mark_down(self) -> None:
        with contextlib.suppress(OSError):
            self.ensure()
            self.down_marker.touch()

    def mark_up(self) -> None:
        with contextlib.suppress(OSError):
            self.down_marker.unlink()

    @contextlib.contextmanager
    def lock(self, wait_s: float) -> Any:
        """Yields True if this process holds the spool lock (waiting at most ``wait_s``), else False."""
        self.ensure()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.005)
            yield True
        finally:
            os.close(fd)


def flush(spool: Spool, client: RedisClient, log: Log) -> int:
    """Publish spooled events oldest first; returns how many are left. Raises RedisError when Redis fails."""
    files = spool.files()
    done = 0
    for start in range(0, len(files), FLUSH_CHUNK):
        chunk = files[start : start + FLUSH_CHUNK]
        envelopes, usable = [], []
        for path in chunk:
            try:
                envelopes.append(validate(json.loads(path.read_text(encoding="utf-8"))))
                usable.append(path)
            except (OSError, ValueError) as exc:
                log("error", f"dropping unreadable spool file {path.name}: {exc}")
                with contextlib.suppress(OSError):
                    path.rename(path.with_name("." + path.name + ".bad"))
        if envelopes:
            publish(client, envelopes)
        for path in usable:
            path.unlink()
        done += len(chunk)
        if client.deadline is not None and time.monotonic() > client.deadline - 0.1:
            break  # keep dhcpd fast; the next call (or --flush) goes on
    if done:
        log("info", f"flushed {done} spooled event(s) to Redis")
    return len(files) - done


def run(argv: list[str], log: Log) -> None:
    conf = settings()
    try:
        timeout = min(MAX_TIMEOUT, max(0.05, float(conf.get("BM_HOOK_TIMEOUT", "0.8"))))
        retry_after = max(0.0, float(conf.get("BM_HOOK_RETRY_AFTER", str(CIRCUIT_OPEN_S))))
    except ValueError:
        timeout, retry_after = 0.8, CIRCUIT_OPEN_S
    deadline = time.monotonic() + timeout
    flush_only = argv[:1] == ["--flush"]
    envelope = None if flush_only else lease_event(argv, log)
    if envelope is None and not flush_only:
        return
    spool = Spool(conf.get("BM_HOOK_SPOOL", DEFAULT_SPOOL), retry_after)
    if flush_only:
        deadline = time.monotonic() + 600
    with spool.lock(LOCK_WAIT_S if not flush_only else 600) as locked:
        if not locked or (spool.circuit_open() and not flush_only):
            if envelope is not None:
                spool.write(envelope)
                log(
                    "warning",
                    f"spooled dhcp_lease {envelope['data']['mac']} {envelope['data']['ip']} (Redis down or busy)",
                )
            return
        settings_ = RedisSettings(conf.get("BM_REDIS_URL"), conf.get("BM_REDIS_PASSWORD"))
        client = RedisClient(settings_, timeout=timeout, deadline=deadline)
        try:
            left = flush(spool, client, log)
            if envelope is not None:
                if left:
                    spool.write(envelope)
                else:
                    result = publish(client, [envelope])
                    entry = result["published"][0]["entry_id"]
                    log("info", f"published dhcp_lease {envelope['data']['mac']} {envelope['data']['ip']} as {entry}")
            spool.mark_up()
        except (RedisError, BusError, OSError) as exc:
            spool.mark_down()
            if envelope is not None:
                spool.write(envelope)
            log("warning", f"Redis unavailable ({exc}); event spooled in {spool.dir}")
        finally:
            client.close()


def main() -> int:
    log = Log()
    try:
        run(sys.argv[1:], log)
    except BaseException as exc:
        log("error", f"{type(exc).__name__}: {exc}; event lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
