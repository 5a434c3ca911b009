"""Validation tokens: single use, only hashed, TTL, replaced on re-issue; the boot parameters that carry them."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import (
    ACCEPTED_TTL,
    TokenError,
    accepted_at,
    boot_paths,
    hash_token,
    issue,
    kernel_params,
    redact,
    remove_files,
    render,
    revoke,
    ttl_of,
    verify,
    verify_consume,
    write_file,
)


def test_token_is_single_use_and_stored_only_hashed(bus: RedisClient) -> None:
    issued = issue(bus, 7, ttl=60)
    token = issued["token"]
    assert len(token) >= 43
    stored = bus.call("GET", "bm:validation_token:7")
    assert token.encode() not in stored
    assert stored == hash_token(token).encode()
    assert 0 < (ttl_of(bus, 7) or 0) <= 60
    assert verify(bus, 7, token)  # does not consume
    assert verify_consume(bus, 7, token)
    assert not verify_consume(bus, 7, token)
    assert ttl_of(bus, 7) is None


def test_a_consumed_token_is_marked_accepted_for_a_while(bus: RedisClient) -> None:
    token = issue(bus, 7, ttl=60)["token"]
    assert accepted_at(bus, 7) is None
    assert verify_consume(bus, 7, token)
    assert accepted_at(bus, 7) is not None
    assert 0 < int(bus.call("TTL", "bm:validation_token:7")) <= ACCEPTED_TTL
    assert not verify(bus, 7, token)
    issue(bus, 7)  # a new validation run replaces the mark
    assert accepted_at(bus, 7) is None
    revoke(bus, 7)
    assert accepted_at(bus, 7) is None


def test_wrong_token_or_device_burns_nothing(bus: RedisClient) -> None:
    token = issue(bus, 7)["token"]
    for device, presented in [(7, "x" * 43), (8, token), (7, ""), (7, None), ("seven", token), (7, "bad token!")]:
        assert not verify_consume(bus, device, presented)
    assert verify_consume(bus, 7, token)


def test_reissue_replaces_the_older_token(bus: RedisClient) -> None:
    old = issue(bus, 7)["token"]
    new = issue(bus, 7)["token"]
    assert old != new
    assert not verify_consume(bus, 7, old)
    assert verify_consume(bus, 7, new)


def test_token_expires(bus: RedisClient) -> None:
    token = issue(bus, 7, ttl=1)["token"]
    bus.call("PEXPIRE", "bm:validation_token:7", 1)
    time.sleep(0.05)
    assert not verify_consume(bus, 7, token)


def test_revoke(bus: RedisClient) -> None:
    issue(bus, 7)
    assert revoke(bus, 7)
    assert not revoke(bus, 7)


@pytest.mark.parametrize(("device", "ttl"), [(0, 60), (-1, 60), ("x", 60), (True, 60), (1, 0), (1, 10**9)])
def test_bad_input_is_refused(bus: RedisClient, device: object, ttl: int) -> None:
    with pytest.raises((TokenError, ValueError)):
        issue(bus, device, ttl=ttl)


def test_kernel_params_and_redaction() -> None:
    params = kernel_params(1, "tok_EN-123456789012", "https://10.1.100.5:5000/api/v1/validation/report", "/etc/ca.pem",
                           ["console=ttyS0"])  # fmt: skip
    assert params == (
        "bm.device_id=1 bm.token=tok_EN-123456789012 bm.callback=https://10.1.100.5:5000/api/v1/validation/report "
        "bm.ca=/etc/ca.pem console=ttyS0"
    )
    assert "tok_EN" not in redact(params)
    assert "bm.token=*** " in redact(params)
    for bad in ["ftp://x", "", "http://a b"]:
        with pytest.raises(TokenError):
            kernel_params(1, "tok_EN-123456789012", bad)
    with pytest.raises(TokenError):
        kernel_params(1, "tok_EN-123456789012", "http://x", extra=["two words"])


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
