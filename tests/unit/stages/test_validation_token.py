"""Validation tokens: bound to the BMC's identity at issue, handed out once (a second request revokes them), single
use, only hashed, TTL, replaced on re-issue; the boot parameters, which carry no secret."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _validation_token as tokens
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import (
    ACCEPTED_TTL,
    HANDOUT,
    MISMATCH,
    MISSING,
    REVOKED,
    THEFT,
    USED,
    Identity,
    TokenError,
    accepted_at,
    boot_paths,
    handout,
    hash_token,
    holder,
    issue,
    kernel_params,
    remove_files,
    render,
    revoke,
    ttl_of,
    verify,
    verify_consume,
    write_file,
)

SERVER = Identity("4c4c4544-0042-3610-8030-b2c04f4e3432", "CZJ0000001")
OTHER = Identity("4c4c4544-0042-3610-8030-b2c04f4e9999", "CZJ0000002")
REQUEST = "req-0123456789abcdef"


def handed(bus: RedisClient, device: int = 7, ttl: int = 600) -> str:
    """Issue and hand out the device's token (as provisioning, then the image, do)."""
    issue(bus, device, SERVER, ttl=ttl)
    got = handout(bus, device, SERVER, REQUEST)
    assert got.outcome == HANDOUT and got.token
    return got.token


def test_issue_binds_the_identity_and_stores_no_token(bus: RedisClient) -> None:
    issued = issue(bus, 7, Identity(SERVER.uuid.upper(), SERVER.serial), ttl=60)
    assert set(issued) == {"device_id", "ttl", "expires_at"}
    stored = bus.call("GET", "bm:validation_token:7").decode()
    assert SERVER.uuid in stored and SERVER.serial in stored  # the UUID lower-cased
    assert '"hash"' not in stored
    assert 0 < (ttl_of(bus, 7) or 0) <= 60
    with pytest.raises(TokenError, match="no system UUID or serial"):
        issue(bus, 8, Identity())


def test_the_token_is_handed_out_once_stored_only_hashed_and_single_use(bus: RedisClient) -> None:
    token = handed(bus)
    assert len(token) >= 43
    stored = bus.call("GET", "bm:validation_token:7").decode()
    assert token not in stored
    assert hash_token(token) in stored
    assert hash_token(REQUEST) in stored and REQUEST not in stored
    assert holder(bus, 7, token) == SERVER
    assert verify(bus, 7, token)  # does not consume
    assert verify_consume(bus, 7, token)
    assert not verify_consume(bus, 7, token)
    assert ttl_of(bus, 7) is None


def test_a_retry_with_the_same_request_id_gets_a_fresh_token(bus: RedisClient) -> None:
    first = handed(bus)
    again = handout(bus, 7, SERVER, REQUEST)
    assert again.outcome == HANDOUT and again.token and again.token != first
    assert not verify(bus, 7, first)
    assert verify_consume(bus, 7, again.token)


def test_a_second_request_revokes_the_token_and_runs_the_theft_commands_once(bus: RedisClient) -> None:
    token = handed(bus)
    calls = []

    def on_theft() -> list[tuple[str, ...]]:
        calls.append(1)
        return [("SET", "theft-seen", "1")]

    got = handout(bus, 7, SERVER, "another-request-id-0001", on_theft)
    assert (got.outcome, got.token) == (THEFT, None)
    assert bus.call("GET", "theft-seen") == b"1"
    assert not verify_consume(bus, 7, token)  # the first caller's token stops working too
    assert ttl_of(bus, 7) is None and accepted_at(bus, 7) is None
    for request in (REQUEST, "yet-another-request-02"):  # revoked for good: nothing handed out, no second refusal
        assert handout(bus, 7, SERVER, request, on_theft).outcome == REVOKED
    assert calls == [1]


def test_an_identity_mismatch_changes_nothing(bus: RedisClient) -> None:
    issue(bus, 7, SERVER)
    before = bus.call("GET", "bm:validation_token:7")
    for presented in (OTHER, Identity(OTHER.uuid, SERVER.serial), Identity(SERVER.uuid, OTHER.serial), Identity()):
        got = handout(bus, 7, presented, REQUEST)
        assert (got.outcome, got.token, got.expected) == (MISMATCH, None, SERVER)
    assert bus.call("GET", "bm:validation_token:7") == before
    token = handed(bus)
    assert handout(bus, 7, OTHER, "another-request-id-0001").outcome == MISMATCH  # not theft: the token survives
    assert verify(bus, 7, token)


def test_identity_rules() -> None:
    assert SERVER.mismatch(Identity(SERVER.uuid.upper(), SERVER.serial)) is None  # the UUID in any case
    assert SERVER.mismatch(Identity(SERVER.uuid, "")) is None  # the serial only when both sides have one
    assert Identity(SERVER.uuid).mismatch(Identity(SERVER.uuid, "anything")) is None
    assert SERVER.mismatch(Identity("", SERVER.serial)) == f"presented {Identity('', SERVER.serial)}, expected {SERVER}"
    assert Identity("", "S1").mismatch(Identity("any-uuid", "S1")) is None
    assert Identity("", "S1").mismatch(Identity("any-uuid", "S2")) is not None
    assert Identity.of({"uuid": " ABC ", "serial": " s1 "}) == Identity("abc", "s1")
    assert not Identity.of(None)


def test_a_consumed_token_is_marked_accepted_for_a_while(bus: RedisClient) -> None:
    token = handed(bus)
    assert accepted_at(bus, 7) is None
    assert verify_consume(bus, 7, token)
    assert accepted_at(bus, 7) is not None
    assert 0 < int(bus.call("TTL", "bm:validation_token:7")) <= ACCEPTED_TTL
    assert not verify(bus, 7, token)
    assert handout(bus, 7, SERVER, "another-request-id-0001").outcome == USED  # the mark stays
    assert accepted_at(bus, 7) is not None
    issue(bus, 7, SERVER)  # a new validation run replaces the mark
    assert accepted_at(bus, 7) is None
    revoke(bus, 7)
    assert accepted_at(bus, 7) is None


def test_nothing_to_hand_out(bus: RedisClient) -> None:
    assert handout(bus, 7, SERVER, REQUEST).outcome == MISSING
    bus.call("SET", "bm:validation_token:7", "garbage")
    assert handout(bus, 7, SERVER, REQUEST).outcome == MISSING
    for bad in ("short", "has spaces in it ok", "x" * 129):
        with pytest.raises(TokenError, match="request_id"):
            handout(bus, 7, SERVER, bad)


def test_concurrent_requests_hand_out_one_token_and_one_theft(bus: RedisClient, redis_server: object) -> None:
    issue(bus, 7, SERVER)
    outcomes: list[str] = []

    def ask(n: int) -> None:
        with RedisClient(RedisSettings(redis_server.url), timeout=5) as client:  # type: ignore[attr-defined]
            outcomes.append(handout(client, 7, SERVER, f"concurrent-request-{n:04d}").outcome)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == sorted([HANDOUT, THEFT] + [REVOKED] * 6)


def test_wrong_token_or_device_burns_nothing(bus: RedisClient) -> None:
    token = handed(bus)
    for device, presented in [(7, "x" * 43), (8, token), (7, ""), (7, None), ("seven", token), (7, "bad token!")]:
        assert not verify_consume(bus, device, presented)
        assert holder(bus, device, presented) is None
    assert verify_consume(bus, 7, token)


def test_reissue_replaces_the_older_token(bus: RedisClient) -> None:
    old = handed(bus)
    new = handed(bus)
    assert old != new
    assert not verify_consume(bus, 7, old)
    assert verify_consume(bus, 7, new)


def test_token_expires(bus: RedisClient) -> None:
    token = handed(bus, ttl=1)
    bus.call("PEXPIRE", "bm:validation_token:7", 1)
    time.sleep(0.05)
    assert not verify_consume(bus, 7, token)
    assert handout(bus, 7, SERVER, REQUEST).outcome == MISSING


def test_revoke(bus: RedisClient) -> None:
    issue(bus, 7, SERVER)
    assert revoke(bus, 7)
    assert not revoke(bus, 7)


@pytest.mark.parametrize(("device", "ttl"), [(0, 60), (-1, 60), ("x", 60), (True, 60), (1, 0), (1, 10**9)])
def test_bad_input_is_refused(bus: RedisClient, device: object, ttl: int) -> None:
    with pytest.raises((TokenError, ValueError)):
        issue(bus, device, SERVER, ttl=ttl)


def test_kernel_params_carry_no_secret() -> None:
    params = kernel_params(1, "https://10.1.100.5:5000/api/v1/validation/report", "/etc/ca.pem", ["console=ttyS0"])
    assert params == (
        "bm.device_id=1 bm.callback=https://10.1.100.5:5000/api/v1/validation/report bm.ca=/etc/ca.pem console=ttyS0"
    )
    assert "token" not in params
    for bad in ["ftp://x", "", "http://a b"]:
        with pytest.raises(TokenError):
            kernel_params(1, bad)
    with pytest.raises(TokenError):
        kernel_params(1, "http://x", extra=["two words"])
    assert tokens.REQUEST_ID.match(REQUEST)


def test_render_ipxe_and_cmdline() -> None:
    script = render("ipxe", "bm.device_id=1", kernel_url="http://h/vmlinuz", initrd_url="http://h/initrd", comment="c")
    assert script.splitlines() == [
        "#!ipxe",
        "# c",
        "kernel http://h/vmlinuz initrd=initrd bm.device_id=1",
        "initrd --name initrd http://h/initrd",
        "boot",
    ]
    assert render("cmdline", "bm.device_id=1") == "bm.device_id=1\n"
    with pytest.raises(TokenError):
        render("ipxe", "bm.device_id=1")
    with pytest.raises(TokenError):
        render("grub", "x")


def test_boot_files_are_written_atomically_and_removed(tmp_path: Path) -> None:
    paths = boot_paths(str(tmp_path), ["srv001", "4c4c4544-0042"], "ipxe")
    assert paths == [str(tmp_path / "srv001.ipxe"), str(tmp_path / "4c4c4544-0042.ipxe")]
    for p in paths:
        write_file(p, "#!ipxe\n", 0o640)
    assert stat.S_IMODE(os.stat(paths[0]).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["4c4c4544-0042.ipxe", "srv001.ipxe"]  # no temporary files left
    assert remove_files([*paths, str(tmp_path / "gone.ipxe")]) == paths
    for bad in ["../etc/passwd", "a/b", "", ".hidden"]:
        with pytest.raises(TokenError):
            boot_paths(str(tmp_path), [bad], "ipxe")
