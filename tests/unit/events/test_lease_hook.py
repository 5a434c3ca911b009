"""The DHCP hook's own standard-library code (files/bm_lease_hook.py) held to what it stands in for: MAC normalisation
(module_utils/_mac.py), IP parsing (ipaddress), host names (the RFC 1123 pattern), JSON strings (json), the envelope
(module_utils/_envelope.py validates it), Redis URLs; and the Kea entry point's reading of Kea's environment."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope, _mac

FILES = Path(__file__).resolve().parents[3] / "collections/ansible_collections/bm/lifecycle/files"


def load(name: str) -> ModuleType:
    if str(FILES) not in sys.path:
        sys.path.insert(0, str(FILES))  # the entry points import bm_lease_hook from beside them, as when run
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = load("bm_lease_hook")
kea = load("kea_hook")
# The pattern the hook used while it could afford `re` (RFC 1123 labels, 253 characters, one trailing dot).
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))


def reference_mac(value: str) -> tuple[str | None, str | None]:
    try:
        return _mac.normalize_mac(value), None
    except _mac.MacError as exc:
        return None, str(exc)


def hook_mac(value: str) -> tuple[str | None, str | None]:
    try:
        return hook.normalize_mac(value), None
    except ValueError as exc:
        return None, str(exc)


octet = st.integers(0, 255)
mac_spellings = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF:-. \tgz", max_size=20),
    st.lists(octet, min_size=5, max_size=7).flatmap(
        lambda os_: st.sampled_from([":", "-", "."]).map(lambda sep: sep.join(f"{o:x}" for o in os_))
    ),
    st.lists(octet, min_size=6, max_size=6).map(lambda os_: "".join(f"{o:02X}" for o in os_)),
    st.lists(octet, min_size=6, max_size=6)
    .map(lambda os_: bytes(os_).hex())
    .map(lambda h: f"{h[:4]}.{h[4:8]}.{h[8:]}"),
)


@given(mac_spellings)
def test_mac_normalisation_is_module_utils_normalisation(value: str) -> None:
    assert hook_mac(value) == reference_mac(value)


def reference_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def hook_ip(text: str) -> str | None:
    try:
        result: str = hook.normalize_ip(text)
    except ValueError:
        return None
    return result


ip_texts = st.one_of(
    st.text(alphabet="0123456789.", max_size=18),
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(f"{n:03d}" for n in t)),
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789abcdef:.%", max_size=24),
)


@given(ip_texts)
def test_ip_parsing_is_ipaddress(text: str) -> None:
    assert hook_ip(text) == reference_ip(text)


@given(st.text(alphabet="abcXYZ019-._ é", max_size=70) | st.from_regex(HOSTNAME, fullmatch=True))
def test_hostname_rule_is_the_pattern(name: str) -> None:
    name = name.strip()
    assert hook.valid_hostname(name) == bool(HOSTNAME.match(name))


def test_hostname_lengths() -> None:
    label = "a" * 63
    assert hook.valid_hostname(label) and not hook.valid_hostname(label + "a")
    long_name = ".".join([label] * 3) + "." + "b" * 61  # 253 characters
    assert len(long_name) == 253 and hook.valid_hostname(long_name) and hook.valid_hostname("ilo-7.example.")
    assert (
        not hook.valid_hostname(long_name + "b") and not hook.valid_hostname("-a") and not hook.valid_hostname("a..b")
    )


@given(st.text())
def test_json_strings_are_json(value: str) -> None:
    assert hook._json_str(value) == json.dumps(value)


@given(
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    mac_spellings.filter(lambda m: reference_mac(m)[0] is not None),
    st.text(alphabet="abc-.0", max_size=12),
)
def test_lease_envelopes_are_valid_v1_envelopes(ip: str, mac: str, host: str) -> None:
    log = Lines()
    event = hook.lease_event((ip, mac, host), "dhcpd", log)
    envelope = _envelope.decode(event.raw)
    assert event.raw == _envelope.encode(envelope)  # the bus's own encoding, byte for byte
    assert uuid.UUID(envelope["event_id"]).version == 4 and envelope["event_id"] == event.event_id
    assert envelope["event_type"] == "dhcp_lease" and envelope["causation_id"] is None and envelope["device"] is None
    assert envelope["source"].startswith("dhcpd@")
    data = envelope["data"]
    assert (data["ip"], data["mac"]) == (ip, _mac.normalize_mac(mac))
    assert data["hostname"] == (host.strip() if host.strip() and HOSTNAME.match(host.strip()) else None)
    assert bool(log.lines) == (bool(host.strip()) and data["hostname"] is None)  # only a bad host name is logged


def test_invalid_ip_or_mac_is_dropped_with_the_reason() -> None:
    log = Lines()
    assert hook.lease_event(("300.1.1.1", "94:40:c9:5e:07:b0", ""), "dhcpd", log) is None
    assert hook.lease_event(("192.0.2.1", "94:40:c9:5e:07", ""), "dhcpd", log) is None
    assert [m.split(" '")[0] for _level, m in log.lines] == ["invalid IP address", "invalid MAC address"]


def test_timestamps_are_rfc3339_utc() -> None:
    assert hook.timestamp(1_796_283_497_413_683_123) == "2026-12-03T07:38:17.413683Z"


def test_spooled_envelopes_read_back_and_junk_is_refused() -> None:
    event = hook.lease_event(("192.0.2.1", "94:40:c9:5e:07:b0", "ilo"), "dhcpd", Lines())
    again = hook.spooled_event(event.raw)
    assert (again.event_id, again.raw, again.label) == (event.event_id, event.raw, event.label)
    wrong_type = json.loads(event.raw) | {"event_type": "unknown_mac"}
    for junk in ("{", "[]", json.dumps(wrong_type), event.raw.replace('"version":1', '"version":2')):
        with pytest.raises(ValueError):
            hook.spooled_event(junk)


@pytest.mark.parametrize(
    ("url", "password", "want"),
    [
        (None, None, ("redis", "127.0.0.1", 6379, "", 0, None, None)),
        ("redis://10.1.0.5:6380/2", None, ("redis", "10.1.0.5", 6380, "", 2, None, None)),
        ("redis://:s%40cret@h/0", None, ("redis", "h", 6379, "", 0, None, "s@cret")),
        ("redis://bm:pw@[::1]:7000/3", "other", ("redis", "::1", 7000, "", 3, "bm", "other")),
        ("rediss://Redis.example", None, ("rediss", "redis.example", 6379, "", 0, None, None)),
        (
            "unix:///run/redis/redis.sock?db=4",
            None,
            ("unix", "127.0.0.1", 6379, "/run/redis/redis.sock", 4, None, None),
        ),
    ],
)
def test_redis_urls(url: str | None, password: str | None, want: tuple[Any, ...]) -> None:
    u = hook.RedisURL(url, password)
    assert (u.scheme, u.host, u.port, u.path, u.db, u.username, u.password) == want
    assert "cret" not in str(u) and "pw" not in str(u)


@pytest.mark.parametrize("url", ["http://h/0", "redis://h:99999/0", "redis://h/x", "h:6379"])
def test_bad_redis_urls_are_refused(url: str) -> None:
    with pytest.raises(hook.RedisError):
        hook.RedisURL(url)


def test_kea_committed_leases_come_from_the_environment() -> None:
    environ = {
        "LEASES4_SIZE": "2",
        "LEASES4_AT0_ADDRESS": "10.77.0.100",
        "LEASES4_AT0_HWADDR": "94:40:c9:5e:07:b0",
        "LEASES4_AT0_HOSTNAME": "ilo-lab001",
        "LEASES4_AT1_ADDRESS": "10.77.0.101",
        "LEASES4_AT1_HWADDR": "94:40:c9:5e:07:b1",
        "DELETED_LEASES4_SIZE": "0",
    }
    log = Lines()
    assert kea.committed_leases(environ, log) == [
        ("10.77.0.100", "94:40:c9:5e:07:b0", "ilo-lab001"),
        ("10.77.0.101", "94:40:c9:5e:07:b1", ""),
    ]
    assert kea.committed_leases({"LEASES4_SIZE": "x"}, log) == [] and "not a count" in log.lines[-1][1]
    assert kea.committed_leases({}, log) == []
    many = kea.committed_leases({"LEASES4_SIZE": "1000"}, log)
    assert len(many) == hook.MAX_LEASES and "first 64" in log.lines[-1][1]


class Deadline:
    """Stands in for the hook's Redis connection where ``hand_over`` only reads its time budget."""

    def __init__(self, seconds: float) -> None:
        import time  # noqa: PLC0415

        self.deadline = time.monotonic() + seconds


def recording_deliver(spool: Any, arrive_during: list[Any], published: list[str]) -> Any:
    """A ``deliver`` that publishes to a list: the spool first, then the call's own events; on its first call a
    concurrent lease (``arrive_during``) is spooled while the lock is held, as a call that found it busy does."""

    def deliver(spool_: Any, redis: Any, events: list[Any], log: Any) -> None:
        for name in spool.files():
            path = Path(spool.dir) / name
            published.append(hook.spooled_event(path.read_text()).label)
            path.unlink()
        published.extend(event.label for event in events)
        while arrive_during:
            spool.write(arrive_during.pop(0))

    return deliver


def lease(n: int) -> Any:
    return hook.lease_event((f"192.0.2.{n}", f"94:40:c9:5e:07:{n:02x}", f"ilo-{n}"), "dhcpd", Lines())


def test_a_lease_spooled_while_the_lock_is_held_is_published_by_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The burst case: lease 2 arrives while lease 1's call holds the spool and fails its own try of the lock; lease 1's
    call finds it after letting go and publishes it, instead of leaving it for the next lease."""
    spool = hook.Spool(str(tmp_path))
    published: list[str] = []
    monkeypatch.setattr(hook, "deliver", recording_deliver(spool, [lease(2)], published))
    lock = spool.lock(0)
    assert lock is not None
    hook.hand_over(spool, Deadline(5), [lease(1)], lock, Lines())
    assert published == [lease(1).label, lease(2).label]
    assert spool.files() == []
    assert spool.lock(0) is not None  # and the lock is free again


def test_the_holder_leaves_the_spool_to_whoever_holds_the_lock_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another call took the lock the moment it was let go, that call (not this one) flushes the spool."""
    spool = hook.Spool(str(tmp_path))
    published: list[str] = []
    second = lease(2)
    deliver = recording_deliver(spool, [second], published)
    taken: list[int | None] = []

    def deliver_then_lose_the_race(*args: Any) -> None:
        deliver(*args)
        os_close = hook.os.close

        def close_and_hand_over(fd: int) -> None:
            os_close(fd)
            taken.append(spool.lock(0))  # the next call was waiting for exactly this
            monkeypatch.setattr(hook.os, "close", os_close)

        monkeypatch.setattr(hook.os, "close", close_and_hand_over)

    monkeypatch.setattr(hook, "deliver", deliver_then_lose_the_race)
    lock = spool.lock(0)
    assert lock is not None
    hook.hand_over(spool, Deadline(5), [lease(1)], lock, Lines())
    assert published == [lease(1).label]
    assert [name.endswith(f"{second.event_id}.json") for name in spool.files()] == [True]
    assert taken and taken[0] is not None


def test_a_call_that_finds_the_lock_held_spools_and_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lease 2's call while another call holds the spool: spooled within the lock wait, nothing sent to Redis."""
    monkeypatch.setenv("BM_HOOK_SPOOL", str(tmp_path))
    monkeypatch.setenv("BM_HOOK_CONFIG", "/nonexistent")
    monkeypatch.setattr(hook, "Redis", None)  # any attempt to reach Redis would fail the test
    spool = hook.Spool(str(tmp_path))
    holder = spool.lock(0)
    assert holder is not None
    log = Lines()
    hook.run([("192.0.2.2", "94:40:c9:5e:07:02", "ilo-2")], "dhcpd", log)
    [name] = spool.files()
    assert hook.spooled_event((tmp_path / name).read_text()).label.startswith("94:40:c9:5e:07:02")
    assert any("behind a concurrent call" in message for _, message in log.lines)
