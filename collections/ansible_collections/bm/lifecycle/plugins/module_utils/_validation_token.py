# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-device, single-use validation tokens, bound to the server's identity, and the boot parameters of the image.

No secret travels in the boot script (served over plain HTTP under guessable names): it carries ``bm.device_id``,
``bm.callback`` and ``bm.ca``, never the token. The token is handed out once, in-band, to the image that asks for it
with the identity it reads from the server itself (``dmidecode``), in the manner of Ironic's agent token at first
lookup (docs/ARCHITECTURE.md, "The validation token"):

1. :func:`issue` (provisioning, before the reset) stores, under ``bm:validation_token:<device_id>`` with a TTL, the
   identity the BMC stated over authenticated Redfish (system UUID, lower-case, and serial) and no token yet.
2. :func:`handout` (the webhook's ``POST /api/v1/validation/token``) creates the token and gives it to the first
   caller whose identity matches (:meth:`Identity.mismatch`); only its SHA-256 is kept, with the SHA-256 of the
   caller's ``request_id``. A repeat with the same ``request_id`` (the answer was lost) gets a fresh token, the older
   one stops working. Any other second request is theft: the token is revoked (the first caller's too) in the same
   transaction as the caller's commands (the webhook's refusal event), and nothing is handed out again.
3. The report presents the token (``Authorization: Bearer``); the webhook verifies it (:func:`holder`, which also
   gives the identity the report must match) and consumes it in its own transaction (:func:`consumed`): a consumed
   token leaves ``accepted:<unix time>`` for :data:`ACCEPTED_TTL` seconds, so the validation timeout spares a device
   whose report was accepted and still waits on the bus (:func:`accepted_at`).

A Redis dump never reveals a usable token. Standard library only (modules, the webhook's event source and tests
import it).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisError, RedisReplyError, text
from ansible_collections.bm.lifecycle.plugins.module_utils._time import netbox_time

KEY_PREFIX = "bm:validation_token:"
DEFAULT_TTL = 3600
ACCEPTED_TTL = 3600  # how long a consumed token keeps the validation timeout off its device
ACCEPTED_PREFIX = "accepted:"
REVOKED_PREFIX = "revoked:"
MAX_TTL = 7 * 24 * 3600
TOKEN_BYTES = 32
BOOT_FORMATS = ("ipxe", "cmdline")
UTC = datetime.timezone.utc  # noqa: UP017 - module_utils also run on targets older than Python 3.11
ISSUED, HANDED_OUT = "issued", "handed_out"  # the states of a stored record (JSON) before its token is consumed
# What a handout request got (Handout.outcome):
HANDOUT = "handed_out"  # the token, to the first caller whose identity matches (or its own retry)
MISMATCH = "identity_mismatch"  # another server's identity: refused, nothing changed
THEFT = "token_requested_twice"  # a second caller: the token revoked, the caller's commands run with the revocation
USED = "token_used"  # a report already consumed the token
REVOKED = "token_revoked"  # revoked after a second request
MISSING = "no_token"  # never issued, expired, or revoked by the stage
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
REQUEST_ID = _TOKEN  # the image's random request id: the same characters as a token
_SAFE_WORD = re.compile(r"^[^\s\"'\\]+$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TRIES = 5  # optimistic transactions (WATCH) tried before giving up

# KEYS[1] token key, ARGV[1] hash presented, ARGV[2..] the rest of the SET of consumed(): on a match, mark it accepted.
_CONSUME = (
    "local ok, r = pcall(cjson.decode, redis.call('GET', KEYS[1]) or '') "
    "if ok and type(r) == 'table' and r.state == 'handed_out' and r.hash == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4]) return 1 end return 0"
)


class TokenError(ValueError):
    """Invalid input (device id, TTL, URL, file name, identity); ``str(exc)`` says what."""


@dataclass(frozen=True)
class Identity:
    """A server's identity: system UUID (compared case-insensitively) and serial number."""

    uuid: str = ""
    serial: str = ""

    def __post_init__(self) -> None:  # the UUID lower-case, both trimmed and capped (they come from outside)
        object.__setattr__(self, "uuid", str(self.uuid or "").strip().lower()[:128])
        object.__setattr__(self, "serial", str(self.serial or "").strip()[:128])

    @classmethod
    def of(cls, value: Mapping[str, Any] | None) -> Identity:
        """From ``{uuid, serial}`` (the BMC's ``facts.system``, the image's ``system``, a report's ``hardware``)."""
        value = value or {}
        return cls(value.get("uuid") or "", value.get("serial") or "")

    def __bool__(self) -> bool:
        return bool(self.uuid or self.serial)

    def __str__(self) -> str:
        return f"uuid {self.uuid or '(none)'}, serial {self.serial or '(none)'}"

    def mismatch(self, presented: Identity) -> str | None:
        """Why ``presented`` is not this (expected) identity, None if it is: the UUID must match when one was stated,
        the serial when both sides have one."""
        if self.uuid and presented.uuid != self.uuid:
            return f"presented {presented}, expected {self}"
        if self.serial and presented.serial and presented.serial != self.serial:
            return f"presented {presented}, expected {self}"
        return None


@dataclass(frozen=True)
class Handout:
    """What a handout request got: :data:`HANDOUT` (with ``token``), or why not; ``expected`` the stored identity."""

    outcome: str
    token: str | None = None
    expected: Identity | None = None
    ttl: int | None = None


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
    """What is stored: ``sha256:<hex>`` of the token (or of a request id)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _now() -> int:
    return int(datetime.datetime.now(UTC).timestamp())


def _record(stored: Any) -> dict[str, Any] | None:
    """The stored JSON record (issued or handed out), None for anything else (nothing, a mark, garbage)."""
    if stored is None:
        return None
    try:
        record = json.loads(text(stored))
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("state") in (ISSUED, HANDED_OUT) else None


def issue(redis: RedisClient, device_id: object, identity: Identity, ttl: int = DEFAULT_TTL) -> dict[str, Any]:
    """Store the device's pending handout bound to ``identity`` (replacing any earlier token or mark); no token yet.

    Returns ``{device_id, ttl, expires_at}``."""
    if not 1 <= int(ttl) <= MAX_TTL:
        raise TokenError(f"ttl must be between 1 and {MAX_TTL} seconds, got {ttl}")
    if not identity.uuid and not identity.serial:
        raise TokenError("no system UUID or serial to bind the token to")
    record = {"state": ISSUED, "uuid": identity.uuid, "serial": identity.serial, "issued_at": _now()}
    redis.call("SET", key_for(device_id), json.dumps(record, sort_keys=True), "EX", int(ttl))
    expires = datetime.datetime.now(UTC) + datetime.timedelta(seconds=int(ttl))
    return {"device_id": _device_id(device_id), "ttl": int(ttl), "expires_at": netbox_time(expires)}


def decide(stored: Any, presented: Identity, request_id: str) -> tuple[Handout, str | None]:
    """The handout rule (pure): the outcome and the value to store (None: leave the key as it is)."""
    value = text(stored) if stored is not None else ""
    if value.startswith(ACCEPTED_PREFIX):
        return Handout(USED), None
    if value.startswith(REVOKED_PREFIX):
        return Handout(REVOKED), None
    record = _record(stored)
    if record is None:
        return Handout(MISSING), None
    expected = Identity.of(record)
    if expected.mismatch(presented):
        return Handout(MISMATCH, expected=expected), None
    asked = hash_token(request_id)
    if record["state"] == HANDED_OUT and not hmac.compare_digest(str(record.get("request", "")), asked):
        return Handout(THEFT, expected=expected), f"{REVOKED_PREFIX}{_now()}"
    token = new_token()
    record.update(state=HANDED_OUT, hash=hash_token(token), request=asked, handed_out_at=_now())
    return Handout(HANDOUT, token=token, expected=expected), json.dumps(record, sort_keys=True)


def handout(
    redis: RedisClient,
    device_id: object,
    presented: Identity,
    request_id: str,
    on_theft: Callable[[], Sequence[tuple[Any, ...]]] = list,
) -> Handout:
    """Hand out the device's token once (:func:`decide`), atomically (``WATCH``/``MULTI``/``EXEC``); on theft the
    revocation and the commands ``on_theft()`` returns (the webhook's refusal event) are one transaction."""
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise TokenError("request_id must be 16-128 characters of [A-Za-z0-9_-]")
    key = key_for(device_id)
    for _try in range(_TRIES):
        redis.pipeline([("WATCH", key)])
        stored = redis.call("GET", key)
        result, value = decide(stored, presented, request_id)
        if value is None:
            redis.pipeline([("UNWATCH",)])
            return result
        extra = list(on_theft()) if result.outcome == THEFT else []
        out = redis.pipeline([("MULTI",), ("SET", key, value, "KEEPTTL"), *extra, ("EXEC",)])
        executed = out[-1]
        if executed is None:  # the record changed meanwhile (a concurrent request): decide again
            continue
        if isinstance(executed, RedisReplyError) or any(isinstance(r, RedisReplyError) for r in executed):
            raise RedisError(f"Redis refused the handout transaction: {executed}")
        left = int(redis.call("TTL", key))
        return Handout(result.outcome, result.token, result.expected, left if left > 0 else None)
    raise RedisError(f"the validation token of device {_device_id(device_id)} kept changing; try again")


def holder(redis: RedisClient, device_id: object, token: str | None) -> Identity | None:
    """The identity the token was handed out to, if ``token`` is the device's current one; else None (no change)."""
    if not token or not isinstance(token, str) or not _TOKEN.match(token):
        return None
    try:
        record = _record(redis.call("GET", key_for(device_id)))
    except TokenError:
        return None
    if record is None or record["state"] != HANDED_OUT:
        return None
    return Identity.of(record) if hmac.compare_digest(str(record.get("hash", "")), hash_token(token)) else None


def verify(redis: RedisClient, device_id: object, token: str | None) -> bool:
    """True if ``token`` is the device's current token, without consuming it (constant-time comparison)."""
    return holder(redis, device_id, token) is not None


def verify_consume(redis: RedisClient, device_id: object, token: str | None) -> bool:
    """True (and the token is consumed: its accepted mark) if ``token`` is the device's current, unexpired token;
    else False (no change)."""
    if not token or not isinstance(token, str) or not _TOKEN.match(token):
        return False
    try:
        key = key_for(device_id)
    except TokenError:
        return False
    return bool(redis.call("EVAL", _CONSUME, 1, key, hash_token(token), *consumed(device_id)[2:]))


def consumed(device_id: object) -> tuple[str, str, str, str, int]:
    """The Redis command that marks the device's token consumed (the webhook runs it in its own transaction)."""
    return ("SET", key_for(device_id), f"{ACCEPTED_PREFIX}{_now()}", "EX", ACCEPTED_TTL)


def accepted_at(redis: RedisClient, device_id: object) -> str | None:
    """When the device's token was consumed by an accepted report (NetBox time), None if it was not recently."""
    stored = redis.call("GET", key_for(device_id))
    value = text(stored) if stored is not None else ""
    if not value.startswith(ACCEPTED_PREFIX):
        return None
    return netbox_time(datetime.datetime.fromtimestamp(int(value.partition(":")[2]), UTC))


def revoke(redis: RedisClient, device_id: object) -> bool:
    """Delete the device's token (or pending handout, or mark); True if there was one."""
    return bool(redis.call("DEL", key_for(device_id)))


def ttl_of(redis: RedisClient, device_id: object) -> int | None:
    """Seconds the device's pending or handed-out token has left, None without one (none issued, expired, revoked
    or consumed)."""
    if _record(redis.call("GET", key_for(device_id))) is None:
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
    callback: str,
    ca: str | None = None,
    extra: Iterable[str] = (),
) -> str:
    """The validation image's kernel command line parameters (``iso/validate_server.sh``): no secret among them."""
    if not re.match(r"^https?://", callback or ""):
        raise TokenError(f"callback must be an http(s) URL, got {callback!r}")
    words = [f"bm.device_id={_device_id(device_id)}", f"bm.callback={_word('callback', callback)}"]
    if ca:
        words.append(f"bm.ca={_word('ca', ca)}")
    words += [_word("kernel argument", w) for w in extra]
    return " ".join(words)


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
