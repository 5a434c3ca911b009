# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-device, single-use validation tokens and the boot parameters that carry them to the validation image.

The provisioning stage issues a token just before it reboots a server into the validation image; the image presents it
with its report (``Authorization: Bearer <token>``, for device ``bm.device_id``); the webhook verifies and consumes it
(:func:`verify_consume`) before it accepts the report. Only the SHA-256 of the token is stored, in Redis under
``bm:validation_token:<device_id>`` with a TTL: a Redis dump does not reveal usable tokens. Issuing again replaces the
previous token of the device (the older one stops working). Verification compares and consumes in one step, so a token
is accepted at most once, and a wrong token does not burn the right one. A consumed token leaves ``accepted:<unix
time>`` in its place for :data:`ACCEPTED_TTL` seconds: the validation timeout spares a device whose report was accepted
and still waits on the bus (:func:`accepted_at`).

The token (32 random bytes, URL-safe base64: 43 characters, no blanks) reaches the image on its kernel command line:
``bm.device_id=<id> bm.token=<token> bm.callback=<url> [bm.ca=<path>]`` (see ``iso/validate_server.sh``), rendered
as a per-device iPXE script (or a bare command-line file) into a directory the PXE HTTP server serves.
Standard library only (modules, the webhook's event source and tests import it).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, text
from ansible_collections.bm.lifecycle.plugins.module_utils._time import netbox_time

KEY_PREFIX = "bm:validation_token:"
DEFAULT_TTL = 3600
ACCEPTED_TTL = 3600  # how long a consumed token keeps the validation timeout off its device
ACCEPTED_PREFIX = "accepted:"
MAX_TTL = 7 * 24 * 3600
TOKEN_BYTES = 32
BOOT_FORMATS = ("ipxe", "cmdline")
UTC = datetime.timezone.utc  # noqa: UP017 - module_utils also run on targets older than Python 3.11
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SAFE_WORD = re.compile(r"^[^\s\"'\\]+$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

# KEYS[1] token key, ARGV[1] hash presented, ARGV[2..] the rest of the SET of consumed(): on a match, mark it accepted.
_CONSUME = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4]) return 1 end return 0"
)


class TokenError(ValueError):
    """Invalid input (device id, TTL, URL, file name); ``str(exc)`` says what."""


def _device_id(device_id: object) -> int:
    if isinstance(device_id, bool):
        raise TokenError("device_id must be a positive integer")
    try:
        value = int(str(device_id))
    except ValueError:
        raise TokenError(f"device_id must be a positive integer, got {device_id!r}") from None
    if value < 1:
        raise TokenError(f"device_id must be a positive integer, got {device_id!r}")
    return value


def key_for(device_id: object) -> str:
    return f"{KEY_PREFIX}{_device_id(device_id)}"


def hash_token(token: str) -> str:
    """What is stored: ``sha256:<hex>`` of the token."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def issue(redis: RedisClient, device_id: object, ttl: int = DEFAULT_TTL, *, token: str | None = None) -> dict[str, Any]:
    """Store a new token of the device (replacing any older one) and return ``{token, device_id, ttl, expires_at}``."""
    if not 1 <= int(ttl) <= MAX_TTL:
        raise TokenError(f"ttl must be between 1 and {MAX_TTL} seconds, got {ttl}")
    token = token or new_token()
    if not _TOKEN.match(token):
        raise TokenError("a token must be 16-128 characters of [A-Za-z0-9_-]")
    redis.call("SET", key_for(device_id), hash_token(token), "EX", int(ttl))
    expires = datetime.datetime.now(UTC) + datetime.timedelta(seconds=int(ttl))
    return {
        "token": token,
        "device_id": _device_id(device_id),
        "ttl": int(ttl),
        "expires_at": netbox_time(expires),
    }


def verify_consume(redis: RedisClient, device_id: object, token: str | None) -> bool:
    """True (and the token is gone) if ``token`` is the device's current, unexpired token; else False (no change)."""
    if not token or not isinstance(token, str) or not _TOKEN.match(token):
        return False
    try:
        key = key_for(device_id)
    except TokenError:
        return False
    return bool(redis.call("EVAL", _CONSUME, 1, key, hash_token(token), *consumed(device_id)[2:]))


def consumed(device_id: object) -> tuple[str, str, str, str, int]:
    """The Redis command that marks the device's token consumed (the webhook runs it in its own transaction)."""
    return ("SET", key_for(device_id), f"{ACCEPTED_PREFIX}{int(datetime.datetime.now(UTC).timestamp())}", "EX",
            ACCEPTED_TTL)  # fmt: skip


def accepted_at(redis: RedisClient, device_id: object) -> str | None:
    """When the device's token was consumed by an accepted report (NetBox time), None if it was not recently."""
    stored = redis.call("GET", key_for(device_id))
    value = text(stored) if stored is not None else ""
    if not value.startswith(ACCEPTED_PREFIX):
        return None
    return netbox_time(datetime.datetime.fromtimestamp(int(value.partition(":")[2]), UTC))


def verify(redis: RedisClient, device_id: object, token: str | None) -> bool:
    """True if ``token`` is the device's current token, without consuming it (constant-time comparison)."""
    if not token or not isinstance(token, str) or not _TOKEN.match(token):
        return False
    try:
        stored = redis.call("GET", key_for(device_id))
    except TokenError:
        return False
    return stored is not None and hmac.compare_digest(text(stored), hash_token(token))


def revoke(redis: RedisClient, device_id: object) -> bool:
    """Delete the device's token; True if there was one."""
    return bool(redis.call("DEL", key_for(device_id)))


def ttl_of(redis: RedisClient, device_id: object) -> int | None:
    """Seconds the device's usable token has left, None without one (none issued, expired, revoked or consumed)."""
    stored = redis.call("GET", key_for(device_id))
    if stored is None or text(stored).startswith(ACCEPTED_PREFIX):
        return None
    left = int(redis.call("TTL", key_for(device_id)))
    return None if left < 0 else left


# --- boot parameters ----------------------------------------------------------------------------------------------


def _word(name: str, value: str) -> str:
    if not value or not _SAFE_WORD.match(value):
        raise TokenError(f"{name} must be one word without blanks or quotes, got {value!r}")
    return value


def kernel_params(
    device_id: object,
    token: str,
    callback: str,
    ca: str | None = None,
    extra: Iterable[str] = (),
) -> str:
    """The validation image's kernel command line parameters (``iso/validate_server.sh``)."""
    if not re.match(r"^https?://", callback or ""):
        raise TokenError(f"callback must be an http(s) URL, got {callback!r}")
    words = [
        f"bm.device_id={_device_id(device_id)}",
        f"bm.token={_word('token', token)}",
        f"bm.callback={_word('callback', callback)}",
    ]
    if ca:
        words.append(f"bm.ca={_word('ca', ca)}")
    words += [_word("kernel argument", w) for w in extra]
    return " ".join(words)


def redact(params: str) -> str:
    """Kernel parameters with the token replaced by ``***`` (for logs and module results)."""
    return re.sub(r"(bm\.token=)\S+", r"\1***", params)


def render(
    fmt: str,
    params: str,
    *,
    kernel_url: str | None = None,
    initrd_url: str | None = None,
    comment: str = "",
) -> str:
    """The boot file: an iPXE script (``kernel``/``initrd``/``boot``) or the bare command line."""
    if fmt == "cmdline":
        return params + "\n"
    if fmt != "ipxe":
        raise TokenError(f"boot format must be one of {', '.join(BOOT_FORMATS)}, got {fmt!r}")
    if not kernel_url or not initrd_url:
        raise TokenError("an iPXE script needs kernel_url and initrd_url")
    lines = ["#!ipxe"]
    lines += [f"# {line}" for line in comment.splitlines() if line]
    lines += [
        f"kernel {_word('kernel_url', kernel_url)} initrd=initrd {params}",
        f"initrd --name initrd {_word('initrd_url', initrd_url)}",
        "boot",
    ]
    return "\n".join(lines) + "\n"


def boot_paths(boot_dir: str, names: Iterable[str], fmt: str) -> list[str]:
    paths = []
    for name in names:
        if not _FILE_NAME.match(name):
            raise TokenError(f"boot file name {name!r} must match {_FILE_NAME.pattern}")
        paths.append(os.path.join(boot_dir, f"{name}.{fmt}"))
    return paths


def write_file(path: str, content: str, mode: int = 0o644) -> None:
    """Write atomically (temporary file + rename), so the HTTP server never serves half a script."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".bm-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_files(paths: Iterable[str]) -> list[str]:
    removed = []
    for path in paths:
        if os.path.lexists(path):
            os.unlink(path)
            removed.append(path)
    return removed
