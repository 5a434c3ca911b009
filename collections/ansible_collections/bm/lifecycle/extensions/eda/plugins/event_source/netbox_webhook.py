# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bm.lifecycle.netbox_webhook: NetBox's signed device-change webhooks as rulebook events (the operator's console)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from typing import Any

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive NetBox's signed webhooks about device changes and hand them to the rulebook.
description:
  - Serves C(POST) on O(path). NetBox signs the body of a webhook that has a secret with HMAC-SHA512 in the header
    C(X-Hook-Signature) (hex); a request is accepted only when that signature matches O(secret) (compared in constant
    time), the body is at most O(max_body_bytes) of JSON and it is a NetBox C(dcim.device) change with its
    C(snapshots).
  - Refusals change nothing and put nothing on the rulebook's queue - C(401) no signature, C(403) wrong signature,
    C(400) not JSON, C(413) too large, C(422) not a device change, C(503) no secret configured (every request is
    refused then; the source does not stop the rulebook). Secrets are never logged.
  - An accepted change becomes one event C({netbox_change - {event, object_type, request_id, username, timestamp,
    device - {id, name}, tenant, lifecycle_state - {before, after}, hardened_at - {before, after}}}) from the
    pre- and post-change snapshots (a state that is not set is the empty string). The answer C(202) comes once the
    rule engine took the event.
  - Arguments are checked up front (a clear ValueError); after that the source never raises; if the port cannot be
    bound it logs and tries again.
options:
  host:
    description: Address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port.
    type: int
    default: 5001
  path:
    description: The URL path NetBox posts to (the webhook's payload URL).
    type: str
    default: /api/v1/netbox/event
  secret:
    description: The NetBox webhook's secret; default the environment variable BM_NETBOX_WEBHOOK_SECRET.
    type: str
  max_body_bytes:
    description: Largest request body accepted.
    type: int
    default: 1048576
"""

EXAMPLES = r"""
- name: bm-lifecycle
  hosts: all
  sources:
    - bm.lifecycle.netbox_webhook:
        port: 5001
  rules:
    - name: device set back to staged -> re-run its pipeline
      condition: >-
        event.netbox_change.lifecycle_state.after == "staged" and event.netbox_change.lifecycle_state.before != "staged"
        and event.netbox_change.hardened_at.after == ""
      action:
        run_playbook:
          name: bm.lifecycle.rerun
          extra_vars:
            bm_change: "{{ event.netbox_change }}"
"""

LOG = logging.getLogger("bm.lifecycle.netbox_webhook")
SECRET_ENV = "BM_NETBOX_WEBHOOK_SECRET"  # noqa: S105 - the name of an environment variable
SIGNATURE_HEADER = "X-Hook-Signature"
BIND_RETRY_MAX_S = 30.0


class Refused(Exception):
    """A request refused with ``status``; ``str()`` is the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Config:
    """The source's arguments, validated up front (``ValueError`` names the bad one)."""

    KNOWN = frozenset({"host", "port", "path", "secret", "max_body_bytes"})

    def __init__(self, args: dict[str, Any]) -> None:
        unknown = sorted(k for k in args if k not in self.KNOWN and not k.startswith("eda_"))
        if unknown:
            raise ValueError(f"netbox_webhook: unknown argument(s) {', '.join(unknown)}")
        self.host = str(args.get("host") or "127.0.0.1")
        self.port = _int_arg(args, "port", 5001, 0, 65535)
        self.max_body_bytes = _int_arg(args, "max_body_bytes", 1024 * 1024, 1024, 16 * 2**20)
        self.path = str(args.get("path") or "/api/v1/netbox/event")
        if not self.path.startswith("/"):
            raise ValueError(f"netbox_webhook: path must start with '/', got {self.path!r}")
        self.secret = str(args.get("secret") or os.environ.get(SECRET_ENV) or "")


def _int_arg(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"netbox_webhook: {name} must be an integer from {low} to {high}, got {value!r}")
    return value


def signature(secret: str, body: bytes) -> str:
    """The signature NetBox sends for ``body``: hex HMAC-SHA512 keyed with the webhook's secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha512).hexdigest()


def check_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise ``Refused`` (401 none, 403 wrong) unless ``header`` is the body's signature."""
    if not header or not header.strip():
        raise Refused(401, f"the {SIGNATURE_HEADER} header is required")
    if not hmac.compare_digest(header.strip().lower().encode("ascii", "replace"), signature(secret, body).encode()):
        raise Refused(403, f"the {SIGNATURE_HEADER} signature does not match the body")


def _cf(snapshot: Any, name: str) -> str:
    fields = snapshot.get("custom_fields") if isinstance(snapshot, dict) else None
    value = fields.get(name) if isinstance(fields, dict) else None
    if isinstance(value, dict):  # a select field as the REST API reads it
        value = value.get("value")
    return "" if value is None else str(value)


def device_change(payload: Any) -> dict[str, Any]:
    """The rulebook event of a NetBox webhook payload about a device; ``Refused`` (422) for anything else."""
    if not isinstance(payload, dict):
        raise Refused(422, "the body must be a JSON object (a NetBox webhook payload)")
    if payload.get("object_type") != "dcim.device":
        raise Refused(422, f"not a device change: object_type {str(payload.get('object_type'))[:64]!r}")
    data, snapshots = payload.get("data"), payload.get("snapshots")
    if not isinstance(data, dict) or not isinstance(data.get("id"), int) or not isinstance(snapshots, dict):
        raise Refused(422, "a device change needs data.id and snapshots (NetBox's default webhook body)")
    before, after = snapshots.get("prechange") or {}, snapshots.get("postchange") or {}
    request = payload["request"] if isinstance(payload.get("request"), dict) else {}
    tenant = data["tenant"] if isinstance(data.get("tenant"), dict) else {}
    return {
        "netbox_change": {
            "event": str(payload.get("event") or ""),
            "object_type": "dcim.device",
            "request_id": str(request.get("id") or ""),
            "username": str(request.get("user") or payload.get("username") or ""),
            "timestamp": str(payload.get("timestamp") or ""),
            "device": {"id": data["id"], "name": data.get("name")},
            "tenant": str(tenant.get("slug") or ""),
            "lifecycle_state": {"before": _cf(before, "lifecycle_state"), "after": _cf(after, "lifecycle_state")},
            "hardened_at": {"before": _cf(before, "hardened_at"), "after": _cf(after, "hardened_at")},
        }
    }


class Webhook:
    def __init__(self, cfg: Config, queue: Any) -> None:
        self.cfg = cfg
        self.queue = queue

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_body_bytes + 1)
        app.router.add_post(self.cfg.path, self.receive)
        return app

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.cfg.max_body_bytes:
            raise Refused(413, f"the body is larger than {self.cfg.max_body_bytes} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, f"the body is larger than {self.cfg.max_body_bytes} bytes") from None

    async def receive(self, request: web.Request) -> web.Response:
        try:
            if not self.cfg.secret:
                raise Refused(503, f"no webhook secret configured ({SECRET_ENV}): every request is refused")
            body = await self._body(request)
            check_signature(self.cfg.secret, body, request.headers.get(SIGNATURE_HEADER))
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise Refused(400, "the body is not JSON") from None
            event = device_change(payload)
        except Refused as exc:
            LOG.warning("netbox_webhook: refused a request from %s: %s %s", request.remote, exc.status, exc)
            return web.json_response({"status": "error", "message": str(exc)}, status=exc.status)
        await self.queue.put(event)
        change = event["netbox_change"]
        LOG.info(
            "netbox_webhook: device %s (%s) %s by %s: lifecycle_state %r -> %r",
            change["device"]["id"],
            change["device"]["name"],
            change["event"],
            change["username"],
            change["lifecycle_state"]["before"],
            change["lifecycle_state"]["after"],
        )
        return web.json_response({"status": "accepted"}, status=202)


async def serve(cfg: Config, queue: Any, ready: asyncio.Event | None = None) -> None:
    """Bind (retrying with backoff while the port is taken) and serve until cancelled; never raises otherwise."""
    if not cfg.secret:
        LOG.error("netbox_webhook: %s is not set: every request will be refused", SECRET_ENV)
    runner = web.AppRunner(Webhook(cfg, queue).app(), access_log=None)
    await runner.setup()
    try:
        pause = 1.0
        while True:
            try:
                await web.TCPSite(runner, cfg.host, cfg.port).start()
                break
            except OSError as exc:
                LOG.error(
                    "netbox_webhook: cannot listen on %s:%s (%s); again in %.0f s", cfg.host, cfg.port, exc, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, BIND_RETRY_MAX_S)
        LOG.info("netbox_webhook: listening on http://%s:%s%s", cfg.host, cfg.port, cfg.path)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def main(queue: Any, args: dict[str, Any]) -> None:
    """EDA entry point: validate ``args`` (raises ``ValueError``), then serve forever."""
    await serve(Config(args), queue)
