# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bm.lifecycle.validation_webhook: the validation image's token handout and report endpoints (report durably on the
event bus)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

try:
    from ansible_collections.bm.lifecycle.plugins.module_utils import (
        _batch,
        _envelope,
        _lifecycle,
        _netbox,
        _redis,
        _text,
        _validation_report,
        _validation_token,
    )
except ImportError:  # loaded by path from the collection: make the collection importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[7]))
    from ansible_collections.bm.lifecycle.plugins.module_utils import (
        _batch,
        _envelope,
        _lifecycle,
        _netbox,
        _redis,
        _text,
        _validation_report,
        _validation_token,
    )

DOCUMENTATION = r"""
---
short_description: Hand the validation image its token, receive its report and write it to the event bus.
description:
  - Serves C(POST /api/v1/validation/token), C(POST /api/v1/validation/report) and their OpenAPI document at
    C(GET /api/v1/openapi.json) (docs/ARCHITECTURE.md, "The validation token").
  - C(POST /api/v1/validation/token) with C({device_id, request_id, system - {uuid, serial}}) (the identity the image
    reads with dmidecode, a random id of its own) hands out the device's single-use token once - C(200)
    C({status, device_id, token, expires_in}) - if provisioning issued one (C(bm.lifecycle.validation_token)) and the
    identity matches the one the BMC stated (UUID case-insensitive, serial when both sides have one). An identity
    mismatch is C(403) and changes nothing; the device's NetBox journal gets a warning saying what was presented,
    what was expected and from which address, at most one per device per minute. A second request (another
    C(request_id); the same one is a retry and gets a fresh token, the older one stops working) is theft - C(409);
    the token is revoked (the first caller's too) and, in the same Redis transaction, a refusal
    C({refused - {reason - token_requested_twice, msg}}) goes to C(bm:events:validation_report), which the stage
    C(bm.lifecycle.validation_report) turns into validating -> validation_failed and C(stage_failed).
  - A report is accepted only when everything holds, in this order - body at most O(max_body_bytes) and
    C(application/json); the header C(Authorization) with C(Bearer <token>) present; strict JSON; the report schema
    (C(iso/README.md), list lengths capped); the token is the device's handed-out single-use validation token
    (compared in constant time); the device may take the lifecycle transition C(complete_validation) (it is in
    C(validating)) and is of O(tenant) in NetBox; the report's hardware UUID and serial match the identity the token
    was handed out to (else C(403), the journal warning as above, the token not burned); the event fits the bus
    (64 KiB).
  - Then, in one Redis transaction (C(WATCH) of the token, C(MULTI), C(SET) of the token to its accepted mark,
    C(XADD), C(EXEC)), the token is consumed and a v1 envelope C(validation_report) (its data - the parsed hardware
    identity, physical NICs with canonical MACs and the LLDP neighbours, see C(_validation_report.summarize)) is
    added to C(bm:events:validation_report). Only then the answer is C(202) with the plan's response JSON. The
    report is durable before the image hears about it; a killed rulebook loses nothing; a replay of the token is
    refused.
  - This source puts nothing on the rulebook's queue. C(bm.lifecycle.redis_streams) reads the stream (list
    C(validation_report) in its O(event_types)), so every stage has one path - batched, acknowledged per entry.
  - Every refusal is a 4xx JSON answer C({status, error, message}) and changes nothing but for the theft above
    (C(400) malformed JSON, C(401) missing or bad token, no token to hand out, C(404) no such device, C(403) other
    tenant or identity mismatch, C(409) not in C(validating), token already handed out or used, C(413) too large,
    C(415) not JSON, C(422) schema). NetBox or Redis unreachable is C(503) with C(Retry-After) (the image retries
    until it gets a 2xx). Tokens are never logged; the token's answer says C(Cache-Control - no-store).
  - Arguments are checked up front (a clear ValueError); after that the source never raises and never returns (a
    source that raises stops ansible-rulebook); if the port cannot be bound it logs and tries again.
options:
  host:
    description: Address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port.
    type: int
    default: 5000
  certfile:
    description:
      - TLS certificate chain (PEM); with O(keyfile) the webhook serves HTTPS only. The image verifies it with the CA
        given as C(bm.ca=) on its kernel command line. Default the environment variable BM_WEBHOOK_CERTFILE
        (C(scripts/stack.sh up) makes a local CA and this certificate under C(.lab/tls/)).
      - TLS is the default - without a certificate and key the source refuses to start unless O(plain_http) is set.
    type: str
  keyfile:
    description: TLS private key (PEM, mode 0600); default the environment variable BM_WEBHOOK_KEYFILE.
    type: str
  plain_http:
    description:
      - Serve plain HTTP (certificate and key ignored), with a warning at start - the token handed out and the reports
        then cross the network in clear. Only for a closed test network. Default the environment variable
        BM_WEBHOOK_PLAIN_HTTP (C(1), C(true) or C(yes)).
    type: bool
    default: false
  redis_url:
    description: Redis URL; default the environment variable BM_REDIS_URL, then redis://127.0.0.1:6379/0.
    type: str
  redis_password:
    description: Redis password; default the environment variable BM_REDIS_PASSWORD.
    type: str
  netbox_url:
    description: NetBox URL; default the environment variable NETBOX_API, then NETBOX_URL.
    type: str
  netbox_token:
    description: NetBox API token; default the environment variable NETBOX_TOKEN.
    type: str
  netbox_ca_path:
    description: CA bundle for NetBox's certificate.
    type: str
  netbox_validate_certs:
    description: Verify NetBox's certificate.
    type: bool
    default: true
  tenant:
    description: Only devices of this tenant are accepted; default BM_TENANT, then baremetal-staging.
    type: str
  max_body_bytes:
    description: Largest request body accepted.
    type: int
    default: 1048576
  concurrency:
    description: Reports checked at the same time (each uses a worker thread and one connection to NetBox and Redis).
    type: int
    default: 4
  stream_maxlen:
    description: Approximate cap of the stream's length (XADD MAXLEN ~).
    type: int
    default: 100000
"""

EXAMPLES = r"""
- name: bm-lifecycle
  hosts: localhost
  sources:
    - bm.lifecycle.validation_webhook:
        host: 0.0.0.0
        port: 5000
        certfile: /etc/bm/webhook.crt  # or BM_WEBHOOK_CERTFILE; TLS is the default
        keyfile: /etc/bm/webhook.key
    - bm.lifecycle.redis_streams:
        event_types: [validation_report]
  rules:
    - name: validation_report -> NetBox
      condition: event.event_type == "validation_report"
      action:
        run_playbook:
          name: bm.lifecycle.validation_report
          extra_vars:
            bm_batch: "{{ event }}"
"""

LOG = logging.getLogger("bm.lifecycle.validation_webhook")
REPORT_PATH = "/api/v1/validation/report"
TOKEN_PATH = "/api/v1/validation/token"  # noqa: S105 - a path, not a password
TOKEN_BODY_BYTES = 4096
WARN_EVERY_S = 60  # at most one identity-mismatch journal entry per device per this many seconds
WARNED_PREFIX = "bm:validation_warned:"
OPENAPI_PATH = "/api/v1/openapi.json"
STREAM = _envelope.stream_for("validation_report")
SOURCE_NAME = "bm.lifecycle.validation_webhook"
RETRY_AFTER_S = 10
CERTFILE_ENV, KEYFILE_ENV, PLAIN_HTTP_ENV = "BM_WEBHOOK_CERTFILE", "BM_WEBHOOK_KEYFILE", "BM_WEBHOOK_PLAIN_HTTP"
BIND_RETRY_MAX_S = 30.0
MAX_ERRORS_SHOWN = 10

_IDENTITY_FIELD = {"type": ["string", "null"], "maxLength": 128}
TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["device_id", "request_id", "system"],
    "properties": {
        "device_id": _validation_report.REPORT_SCHEMA["properties"]["device_id"],
        "request_id": {
            "type": "string",
            "pattern": _validation_token.REQUEST_ID.pattern,
            "description": "A random id of the image's own; the same id again is a retry of a lost answer.",
        },
        "system": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"uuid": _IDENTITY_FIELD, "serial": _IDENTITY_FIELD},
            "description": "What dmidecode says of the server: System Information UUID and Serial Number.",
        },
    },
}

try:  # jsonschema ships with ansible-rulebook (it validates rulebooks)
    from jsonschema import Draft202012Validator

    _VALIDATOR: Any = Draft202012Validator(_validation_report.REPORT_SCHEMA)
    _TOKEN_VALIDATOR: Any = Draft202012Validator(TOKEN_REQUEST_SCHEMA)
except ImportError:  # pragma: no cover - the envelope's small validator is the fallback
    _VALIDATOR = _TOKEN_VALIDATOR = None


class Refused(Exception):
    """A request refused with ``status``; ``error`` is a short code, ``str()`` the message."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.headers = headers or {}
        self.details = details


def _int_arg(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"validation_webhook: {name} must be an integer from {low} to {high}, got {value!r}")
    return value


class Config:
    """The source's arguments, validated up front (``ValueError`` names the bad one)."""

    KNOWN = frozenset(
        {
            "host",
            "port",
            "certfile",
            "keyfile",
            "plain_http",
            "redis_url",
            "redis_password",
            "netbox_url",
            "netbox_token",
            "netbox_ca_path",
            "netbox_validate_certs",
            "tenant",
            "max_body_bytes",
            "concurrency",
            "stream_maxlen",
        }
    )

    def __init__(self, args: dict[str, Any]) -> None:
        unknown = sorted(k for k in args if k not in self.KNOWN and not k.startswith("eda_"))
        if unknown:
            raise ValueError(f"validation_webhook: unknown argument(s) {', '.join(unknown)}")
        self.host = str(args.get("host") or "127.0.0.1")
        self.port = _int_arg(args, "port", 5000, 0, 65535)
        self.max_body_bytes = _int_arg(args, "max_body_bytes", _validation_report.MAX_BODY_BYTES, 1024, 16 * 2**20)
        self.concurrency = _int_arg(args, "concurrency", 4, 1, 64)
        self.stream_maxlen = _int_arg(args, "stream_maxlen", 100_000, 100, 10_000_000)
        self.tenant = str(args.get("tenant") or os.environ.get("BM_TENANT") or _netbox.DEFAULT_TENANT)
        redis_url = str(args.get("redis_url") or os.environ.get(_redis.REDIS_URL_ENV) or _redis.DEFAULT_URL)
        password = args.get("redis_password") or os.environ.get(_redis.REDIS_PASSWORD_ENV) or None
        try:
            self.redis = _redis.RedisSettings(redis_url, password=password)
        except ValueError as exc:
            raise ValueError(f"validation_webhook: {exc}") from None
        self.netbox_url = str(
            args.get("netbox_url") or os.environ.get("NETBOX_API") or os.environ.get("NETBOX_URL") or ""
        )
        self.netbox_token = str(args.get("netbox_token") or os.environ.get("NETBOX_TOKEN") or "")
        self.netbox_ca_path = args.get("netbox_ca_path") or None
        self.netbox_validate_certs = bool(args.get("netbox_validate_certs", True))
        try:  # a client checks URL and token without connecting
            _netbox.NetBoxClient(
                self.netbox_url,
                self.netbox_token,
                validate_certs=self.netbox_validate_certs,
                ca_path=self.netbox_ca_path,
            )
        except (ValueError, OSError) as exc:
            raise ValueError(f"validation_webhook: {exc}") from None
        self.ssl: ssl.SSLContext | None = None
        plain = args.get("plain_http", os.environ.get(PLAIN_HTTP_ENV, ""))
        self.plain_http = plain is True or str(plain).strip().lower() in ("1", "true", "yes")
        if self.plain_http:
            return
        certfile = args.get("certfile") or os.environ.get(CERTFILE_ENV)
        keyfile = args.get("keyfile") or os.environ.get(KEYFILE_ENV)
        if bool(certfile) != bool(keyfile):
            raise ValueError("validation_webhook: certfile and keyfile go together")
        if not certfile:
            raise ValueError(
                f"validation_webhook: TLS is the default: give certfile and keyfile (or {CERTFILE_ENV} and "
                f"{KEYFILE_ENV}; scripts/stack.sh up makes them under .lab/tls/), or plain_http: true "
                f"({PLAIN_HTTP_ENV}=1) to serve plain HTTP on a closed test network"
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(certfile), str(keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"validation_webhook: cannot load certfile/keyfile: {exc}") from None
        self.ssl = context

    def netbox(self) -> _netbox.NetBoxClient:
        return _netbox.NetBoxClient(
            self.netbox_url,
            self.netbox_token,
            validate_certs=self.netbox_validate_certs,
            ca_path=self.netbox_ca_path,
            timeout=10.0,
            tries=2,
        )

    def redis_client(self) -> _redis.RedisClient:
        return _redis.RedisClient(self.redis, timeout=5.0)


# --- the OpenAPI document -------------------------------------------------------------------------------------------

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["status", "error", "message"],
    "properties": {
        "status": {"type": "string", "const": "error"},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "string"}},
    },
}
_ERRORS = {
    "400": "Malformed JSON (or nested too deeply).",
    "401": "Authorization missing, malformed, or not the device's current single-use token (expired, used, wrong).",
    "403": "The device belongs to another tenant, or the report's hardware UUID/serial is not the server's.",
    "404": "No such device in NetBox.",
    "409": "The device is not in the expected lifecycle state (validating).",
    "413": "The body (or the event built from it) is too large.",
    "415": "The body is not application/json.",
    "422": "The report does not match the schema.",
    "503": "NetBox or Redis is unreachable; retry after Retry-After seconds. Nothing was consumed or written.",
}
_TOKEN_ERRORS = {
    "400": "Malformed JSON.",
    "401": "No token to hand out: none issued, expired, or revoked after a second request.",
    "403": "The identity presented is not the one the BMC stated: nothing changed (the device's journal says so).",
    "409": "The token was already handed out (now revoked: the device fails validation) or used by a report.",
    "413": "The body is too large.",
    "415": "The body is not application/json.",
    "422": "The request does not match the schema.",
    "503": "Redis is unreachable; retry after Retry-After seconds. Nothing was handed out.",
}


def openapi(cfg: Config) -> dict[str, Any]:
    schema = {k: v for k, v in _validation_report.REPORT_SCHEMA.items() if k != "$schema"}
    token_schema = {k: v for k, v in TOKEN_REQUEST_SCHEMA.items() if k != "$schema"}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bm-lifecycle validation webhook",
            "version": "1",
            "description": "Where the validation image posts its report (iso/README.md).",
        },
        "paths": {
            TOKEN_PATH: {
                "post": {
                    "operationId": "postValidationToken",
                    "summary": "Hand out the device's single-use token, once, to the server the BMC named.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The token; present it as Authorization: Bearer with the report.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}},
                        },
                        **{code: {"description": text, "content": error} for code, text in _TOKEN_ERRORS.items()},
                    },
                }
            },
            REPORT_PATH: {
                "post": {
                    "operationId": "postValidationReport",
                    "summary": "Accept one validation report; durable in Redis before the answer.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted and written to the bm:events:validation_report stream.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                        },
                        **{code: {"description": text, "content": error} for code, text in _ERRORS.items()},
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "getOpenAPI",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Report": schema,
                "TokenRequest": token_schema,
                "Token": {
                    "type": "object",
                    "required": ["status", "device_id", "token", "expires_in"],
                    "properties": {
                        "status": {"type": "string", "const": "success"},
                        "device_id": {"type": "string"},
                        "token": {"type": "string"},
                        "expires_in": {"type": ["integer", "null"], "description": "Seconds the token is valid."},
                    },
                },
                "Error": _ERROR_SCHEMA,
                "Accepted": {
                    "type": "object",
                    "required": ["status", "device_id", "message", "event_id"],
                    "properties": {
                        "status": {"type": "string", "const": "success"},
                        "device_id": {"type": "string"},
                        "message": {"type": "string"},
                        "event_id": {"type": "string"},
                    },
                },
            },
        },
        "x-max-body-bytes": cfg.max_body_bytes,
    }


# --- the checks -----------------------------------------------------------------------------------------------------


def parse_body(body: bytes) -> Any:
    try:
        value = _text.loads_strict(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "malformed_json", "the body is not UTF-8") from None
    except RecursionError:
        raise Refused(400, "malformed_json", "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise Refused(400, "malformed_json", f"the body is not valid JSON: {str(exc)[:200]}") from None
    if _validation_report.json_depth(value) > _validation_report.MAX_JSON_DEPTH:
        raise Refused(400, "malformed_json", f"the JSON is nested deeper than {_validation_report.MAX_JSON_DEPTH}")
    return value


def schema_errors(report: Any, validator: Any = None) -> list[str]:
    validator = validator or _VALIDATOR
    if validator is None:  # pragma: no cover
        return [] if isinstance(report, dict) else ["the report must be a JSON object"]
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors[:MAX_ERRORS_SHOWN]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
        out.append(f"{where}: {message}")
    return out


def bearer(header: str | None) -> str:
    if not header:
        raise Refused(
            401,
            "unauthorized",
            "Authorization: Bearer <token> is required",
            {"WWW-Authenticate": 'Bearer realm="bm-validation"'},
        )
    scheme, _sep, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Refused(
            401,
            "unauthorized",
            "the Authorization header must be 'Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="bm-validation", error="invalid_request"'},
        )
    return token


_BAD_TOKEN = "the token is not this device's current validation token (wrong, expired or already used)"  # noqa: S105 - a message, not a password


_THEFT = (
    "this device's validation token was already handed out: it is revoked now and the device fails validation "
    "(someone else may have read its boot script)"
)


def presented_identity(system: Any) -> _validation_token.Identity:
    """The identity a server presents (dmidecode's placeholders, such as "Not Specified", count as none)."""
    system = system if isinstance(system, dict) else {}
    return _validation_token.Identity.of({k: _validation_report.clean(system.get(k)) for k in ("uuid", "serial")})


def warn_identity(cfg: Config, redis: _redis.RedisClient, device_id: int, what: str, peer: str | None) -> bool:
    """A warning in the device's NetBox journal (at most one per device per WARN_EVERY_S); True if written."""
    LOG.warning("validation_webhook: device %s: %s (from %s)", device_id, what, peer)
    if redis.call("SET", f"{WARNED_PREFIX}{device_id}", "1", "NX", "EX", WARN_EVERY_S) is None:
        return False
    client = cfg.netbox()
    try:
        comments = (
            f"bm.lifecycle.validation_webhook: {what} (from {peer or 'unknown'}); refused, nothing changed. "
            f"At most one such entry per {WARN_EVERY_S} s."
        )
        _netbox.journal(client, device_id, comments, "warning")
    except (_netbox.NetBoxError, OSError) as exc:
        LOG.error("validation_webhook: device %s: journal warning not written: %s", device_id, exc)
        return False
    finally:
        client.close()
    return True


def _device_name(cfg: Config, device_id: int) -> str | None:
    """The device's name for an event, None if NetBox does not say (an event still goes out)."""
    client = cfg.netbox()
    try:
        name = client.get(f"/api/dcim/devices/{device_id}/").get("name")
    except (_netbox.NetBoxError, OSError):
        return None
    finally:
        client.close()
    return str(name) if name else None


def hand_out(cfg: Config, request: dict[str, Any], peer: str | None) -> dict[str, Any]:
    """Blocking part of the handout (a worker thread): the token once, or why not (:class:`Refused`)."""
    device_id = int(request["device_id"])
    presented = presented_identity(request.get("system"))
    redis = cfg.redis_client()

    def refusal() -> list[tuple[Any, ...]]:  # theft: the refusal event, written with the revocation
        msg = (
            f"its validation token was requested a second time (from {peer or 'unknown'}, another request id): "
            "revoked, so neither caller can report; someone else may have read its boot script"
        )
        device = {"id": device_id, "name": _device_name(cfg, device_id)}
        data = _batch.refusal_data(_validation_token.THEFT, msg)
        raw = _envelope.encode(_envelope.new_event("validation_report", data, source=SOURCE_NAME, device=device))
        return [("XADD", STREAM, "MAXLEN", "~", cfg.stream_maxlen, "*", _envelope.ENTRY_FIELD, raw)]

    try:
        got = _validation_token.handout(redis, device_id, presented, str(request["request_id"]), refusal)
        outcome = got.outcome
        if outcome == _validation_token.HANDOUT:
            return {"device_id": device_id, "token": got.token, "expires_in": got.ttl}
        if outcome == _validation_token.MISMATCH:
            what = f"validation token asked for with another server's identity: presented {presented}, expected"
            warn_identity(cfg, redis, device_id, f"{what} {got.expected}", peer)
            raise Refused(403, "identity_mismatch", "the identity presented is not this device's: nothing handed out")
        if outcome == _validation_token.THEFT:
            LOG.warning("validation_webhook: device %s: token requested twice (from %s): revoked", device_id, peer)
            raise Refused(409, outcome, _THEFT)
        if outcome == _validation_token.USED:
            what = "validation token asked for after its report was accepted (if this server did not report, who did?)"
            warn_identity(cfg, redis, device_id, what, peer)
            raise Refused(409, outcome, "this device's validation token was already used by an accepted report")
        raise Refused(401, outcome, "no validation token to hand out for this device (none issued, expired or revoked)")
    finally:
        redis.close()


def validating_device(cfg: Config, device_id: int) -> dict[str, Any]:
    """The device's NetBox record if it is ours and in validating; else :class:`Refused` (404, 403, 409)."""
    client = cfg.netbox()
    try:
        device = client.get(f"/api/dcim/devices/{device_id}/")
    except _netbox.NetBoxError as exc:
        if exc.status == 404:
            raise Refused(404, "unknown_device", f"device {device_id} does not exist in NetBox") from None
        raise
    finally:
        client.close()
    why = _lifecycle.refusal(device, _lifecycle.TRANSITIONS["complete_validation"], cfg.tenant)
    if why is not None and why[0] == "tenant":
        raise Refused(403, "foreign_tenant", f"device {device_id} is not a device of tenant {cfg.tenant}")
    if why is not None:
        raise Refused(409, "wrong_state", f"{why[1].split(': nothing changed', maxsplit=1)[0]}: report not accepted")
    return device


def check_and_commit(cfg: Config, report: dict[str, Any], token: str, peer: str | None = None) -> dict[str, Any]:
    """Blocking part (a worker thread): token, NetBox state, identity, envelope, then consume + XADD in one
    transaction."""
    device_id = int(report["device_id"])
    redis = cfg.redis_client()
    try:
        holder = _validation_token.holder(redis, device_id, token)
        if holder is None:
            raise Refused(401, "invalid_token", _BAD_TOKEN, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        device = validating_device(cfg, device_id)
        data = _validation_report.summarize(report)
        if len(data["neighbors"]) > _validation_report.MAX_NEIGHBORS:
            raise Refused(422, "too_many_neighbors", f"more than {_validation_report.MAX_NEIGHBORS} LLDP neighbours")
        reported = presented_identity(data["hardware"])
        if holder.mismatch(reported):
            what = f"validation report with another server's identity: presented {reported}, expected {holder}"
            warn_identity(cfg, redis, device_id, what, peer)
            raise Refused(403, "identity_mismatch", "the report's hardware UUID/serial are not this device's: refused")
        envelope = _envelope.new_event(
            "validation_report", data, source=SOURCE_NAME, device={"id": device_id, "name": device.get("name")}
        )
        try:
            raw = _envelope.encode(envelope)
        except _envelope.EnvelopeError as exc:
            raise Refused(413, "too_large", f"the report's event is too large for the bus: {exc}") from None
        key = _validation_token.key_for(device_id)
        redis.pipeline([("WATCH", key)])
        if not _validation_token.verify(redis, device_id, token):  # used by a concurrent request meanwhile
            redis.pipeline([("UNWATCH",)])
            raise Refused(401, "invalid_token", _BAD_TOKEN, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        out = redis.pipeline(
            [
                ("MULTI",),
                _validation_token.consumed(device_id),
                ("XADD", STREAM, "MAXLEN", "~", cfg.stream_maxlen, "*", _envelope.ENTRY_FIELD, raw),
                ("EXEC",),
            ]
        )
        executed = out[-1]
        if executed is None:
            raise Refused(401, "invalid_token", _BAD_TOKEN, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if isinstance(executed, _redis.RedisReplyError) or any(isinstance(r, _redis.RedisReplyError) for r in executed):
            raise _redis.RedisError(f"Redis refused the transaction: {executed}")
        return {"envelope": envelope, "entry_id": _redis.text(executed[1]), "bytes": len(raw), "device": device}
    finally:
        redis.close()


# --- the HTTP side --------------------------------------------------------------------------------------------------


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, details: list[str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"status": "error", "error": error, "message": message}
    if details:
        body["details"] = details
    return web.json_response(body, status=status, headers=headers)


class Webhook:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.slots = asyncio.Semaphore(cfg.concurrency)
        self.document = openapi(cfg)
        self.accepted = 0
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_body_bytes + 1, middlewares=[self.errors])
        app.router.add_post(TOKEN_PATH, self.token)
        app.router.add_post(REPORT_PATH, self.report)
        app.router.add_get(OPENAPI_PATH, self.openapi)
        return app

    @web.middleware
    async def errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413...: JSON like ours
            if exc.status < 400:
                raise
            return _error(
                exc.status,
                exc.reason.lower().replace(" ", "_"),
                exc.reason,
                {k: v for k, v in exc.headers.items() if k.lower() == "allow"},
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("validation_webhook: unexpected error on %s %s", request.method, request.path)
            return _error(500, "internal_error", "unexpected error; nothing was accepted (see the service log)")

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(self.document)

    async def _body(self, request: web.Request, limit: int | None = None) -> bytes:
        limit = limit or self.cfg.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)

    async def token(self, request: web.Request) -> web.Response:
        """The token handout: once, to the server the BMC named."""
        peer = request.remote
        try:
            if request.content_length is not None and request.content_length > TOKEN_BODY_BYTES:
                raise Refused(413, "too_large", f"the body is larger than {TOKEN_BODY_BYTES} bytes")
            if request.content_type != "application/json":
                raise Refused(415, "unsupported_media_type", "the body must be application/json")
            body = parse_body(await self._body(request, TOKEN_BODY_BYTES))
            errors = schema_errors(body, _TOKEN_VALIDATOR)
            if errors:
                raise Refused(422, "invalid_request", "the token request does not match the schema", details=errors)
            async with self.slots:
                got = await asyncio.to_thread(hand_out, self.cfg, body, peer)
        except Refused as exc:
            self.refused += 1
            LOG.warning("validation_webhook: refused %s from %s: %s %s", request.path, peer, exc.status, exc)
            return _error(exc.status, exc.error, str(exc), exc.headers, exc.details)
        except (_netbox.NetBoxError, _redis.RedisError, OSError) as exc:
            self.refused += 1
            LOG.error("validation_webhook: token not handed out to %s, a backend failed: %s", peer, exc)
            return _error(503, "unavailable", f"Redis is unavailable ({type(exc).__name__}); nothing was handed out, "
                          "retry later", {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        LOG.info("validation_webhook: handed the validation token of device %s to %s", got["device_id"], peer)
        return web.json_response(
            {"status": "success", "device_id": str(got["device_id"]), "token": got["token"],
             "expires_in": got["expires_in"]},
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip

    async def report(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        peer = request.remote
        try:
            if request.content_length is not None and request.content_length > self.cfg.max_body_bytes:
                raise Refused(413, "too_large", f"the body is larger than {self.cfg.max_body_bytes} bytes")
            if request.content_type != "application/json":
                raise Refused(415, "unsupported_media_type", "the body must be application/json")
            token = bearer(request.headers.get("Authorization"))
            report = parse_body(await self._body(request))
            errors = schema_errors(report)
            if errors:
                raise Refused(
                    422, "invalid_report", "the report does not match the schema (schema_version 1)", details=errors
                )
            async with self.slots:
                done = await asyncio.to_thread(check_and_commit, self.cfg, report, token, peer)
        except Refused as exc:
            self.refused += 1
            LOG.warning("validation_webhook: refused %s from %s: %s %s", request.path, peer, exc.status, exc)
            return _error(exc.status, exc.error, str(exc), exc.headers, exc.details)
        except (_netbox.NetBoxError, _redis.RedisError, OSError) as exc:
            self.refused += 1
            LOG.error("validation_webhook: report from %s not accepted, a backend failed: %s", peer, exc)
            return _error(
                503,
                "unavailable",
                f"NetBox or Redis is unavailable ({type(exc).__name__}); nothing was consumed or written, retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.accepted += 1
        envelope = done["envelope"]
        LOG.info(
            "validation_webhook: accepted report of device %s (%s) from %s: event %s, entry %s, %d bytes, %.0f ms",
            envelope["device"]["id"],
            envelope["device"]["name"],
            peer,
            envelope["event_id"],
            done["entry_id"],
            done["bytes"],
            (time.monotonic() - started) * 1000,
        )
        return web.json_response(
            {
                "status": "success",
                "device_id": str(envelope["device"]["id"]),
                "message": "Validation data received; NetBox is updated by the lifecycle service",
                "event_id": envelope["event_id"],
            },
            status=202,
        )


async def serve(cfg: Config, ready: asyncio.Event | None = None) -> None:
    """Bind (retrying with backoff if the port is taken) and serve until cancelled; never raises otherwise."""
    webhook = Webhook(cfg)
    runner = web.AppRunner(webhook.app(), access_log=None)
    await runner.setup()
    try:
        pause = 1.0
        while True:
            site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=cfg.ssl)
            try:
                await site.start()
                break
            except OSError as exc:
                LOG.error(
                    "validation_webhook: cannot listen on %s:%s (%s); trying again in %.0f s",
                    cfg.host,
                    cfg.port,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, BIND_RETRY_MAX_S)
        LOG.info(
            "validation_webhook: listening on %s://%s:%s%s",
            "https" if cfg.ssl else "http",
            cfg.host,
            cfg.port,
            REPORT_PATH,
        )
        if cfg.ssl is None:
            LOG.warning(
                "validation_webhook: serving plain HTTP (plain_http): the validation tokens it hands out and the "
                "reports cross the network in clear; give certfile and keyfile outside a closed test network"
            )
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    cfg = Config(args)
    await serve(cfg)
