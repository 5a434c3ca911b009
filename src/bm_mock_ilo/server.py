"""HTTP behaviour of the fleet: one aiohttp application serving every BMC, told apart by the socket it listens on."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import resources, routes
from .bmc import MODELS, Bmc, Counters, Faults
from .messages import BASE, ILO, RedfishError, extended_info, method_not_allowed, not_found
from .payload import MAX_BODY, parse_json
from .registries import schema_types
from .resources import Ctx, Reply

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
COMMON_HEADERS = {
    "OData-Version": "4.0",
    "Cache-Control": "no-cache",
    "X-Frame-Options": "sameorigin",
    "Server": "HPE-iLO-Server/1.30",
}
PUBLIC_GETS = {"/redfish", "/redfish/v1", "/redfish/v1/$metadata", "/redfish/v1/odata"}
SESSION_LOGINS = {"/redfish/v1/sessionservice/sessions", "/redfish/v1/sessions"}


def metadata_document(bmc: Bmc) -> str:
    """``/redfish/v1/$metadata``: references to the DMTF schemas the BMC's generation uses."""
    refs = []
    for name, odata_type in schema_types(bmc).items():
        if name.startswith("Hpe"):
            continue
        namespace = odata_type[1:].rsplit(".", 1)[0]
        includes = f'<edmx:Include Namespace="{name}"/>' + (
            f'<edmx:Include Namespace="{namespace}"/>' if namespace != name else ""
        )
        refs.append(
            f'<edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{name}_v1.xml">{includes}</edmx:Reference>'
        )
    root = bmc.profile.types["ServiceRoot"]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">'
        + "".join(refs)
        + '<edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">'
        f'<EntityContainer Name="Service" Extends="{root}.ServiceContainer"/></Schema>'
        "</edmx:DataServices></edmx:Edmx>"
    )


ODATA_DOCUMENT = {
    "@odata.context": "/redfish/v1/$metadata",
    "value": [
        {"name": name, "kind": "Singleton", "url": f"/redfish/v1/{name}/"}
        for name in ("Systems", "Chassis", "Managers", "AccountService", "SessionService", "JsonSchemas", "Registries")
    ],
}


LINK_KEYS = frozenset({"@odata.id", "target", "DataSourceUri"})


def slash(uri: str) -> str:
    """A link in iLO's form: a trailing slash on the path, before any fragment (``…/Power/#/PowerControl/0``)."""
    path, hash_, fragment = uri.partition("#")
    return (path if path.endswith("/") else path + "/") + hash_ + fragment


def _slashed(value: Any) -> Any:
    """Every link of a body in iLO's trailing-slash form, whichever form the request used."""
    if isinstance(value, dict):
        return {
            k: slash(v) if k in LINK_KEYS and isinstance(v, str) and v.startswith("/") else _slashed(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_slashed(v) for v in value]
    return value


def _described_by(body: Any) -> dict[str, str]:
    """iLO's ``Link`` header: the schema of the resource (``</redfish/v1/SchemaStore/en/Chassis.json/>``)."""
    odata_type = body.get("@odata.type") if isinstance(body, dict) else None
    if not isinstance(odata_type, str) or "error" in body:
        return {}
    name = odata_type.lstrip("#").split(".")[0]
    return {"Link": f"</redfish/v1/SchemaStore/en/{name}.json/>; rel=describedby"}


def _with_context(body: dict[str, Any]) -> dict[str, Any]:
    """iLO's ``@odata.context`` on every resource (``/redfish/v1/$metadata#Chassis.Chassis``), first in the body."""
    odata_type = body.get("@odata.type")
    if "@odata.context" in body or not isinstance(odata_type, str):
        return body
    name = odata_type.lstrip("#").split(".")[0]
    return {"@odata.context": f"/redfish/v1/$metadata#{name}.{name}", **body}


def _json(status: int, body: Any, headers: dict[str, str] | None = None, etag: bool = False) -> web.Response:
    body = _slashed(body)
    text = json.dumps(body, separators=(",", ":"))
    all_headers = {**COMMON_HEADERS, **_described_by(body), **(headers or {})}
    if etag:
        tag = f'W/"{zlib.crc32(text.encode()):08X}"'
        all_headers["ETag"] = tag
        text = '{"@odata.etag":' + json.dumps(tag) + "," + text[1:]
    return web.Response(status=status, text=text, content_type="application/json", charset="utf-8", headers=all_headers)


def _error(error: RedfishError) -> web.Response:
    return _json(error.status, error.body(), error.headers)


async def _read_body(request: web.Request) -> bytes:
    """The request body, refused above MAX_BODY without reading the rest."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RedfishError(400, f"{BASE}.MalformedJSON", headers={"Connection": "close"})
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > MAX_BODY:
            raise RedfishError(400, f"{BASE}.MalformedJSON", headers={"Connection": "close"})
        chunks.append(chunk)
    return b"".join(chunks)


async def _unreachable(bmc: Bmc) -> bool:
    """Apply a rebooting iLO and the injected faults: True to drop the connection; raises for a 503."""
    now = time.monotonic()
    if bmc.manager_down(now):
        if bmc.settings.manager_reset_mode == "refuse":
            return True
        retry = int(bmc.manager_down_until - now) + 1
        raise RedfishError(503, f"{BASE}.ServiceTemporarilyUnavailable", retry, headers={"Retry-After": str(retry)})
    faults = bmc.faults
    if faults.drop_count > 0:
        faults.drop_count -= 1
        bmc.counters.injected_drops += 1
        return True
    if faults.latency_ms > 0:
        await asyncio.sleep(faults.latency_ms / 1000)
    verdict = None
    if faults.share_503 or faults.share_stall:
        bmc.counters.share_requests += 1
        verdict = faults.share_fault()
    if verdict == "stall":
        bmc.counters.injected_stalls += 1
        await asyncio.sleep(faults.stall_ms / 1000)
    elif verdict == "503" or faults.unavailable_count > 0 or now < faults.unavailable_until:
        faults.unavailable_count = max(0, faults.unavailable_count - 1)
        bmc.counters.injected_503 += 1
        raise RedfishError(503, f"{BASE}.ServiceTemporarilyUnavailable", 1, headers={"Retry-After": "1"})
    return False


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (a rebooting iLO, or the drop fault)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)


class Service:
    """The aiohttp application of a fleet: Redfish for every BMC, and the test-only ``/_mock/`` surface."""

    def __init__(self, inventory: Callable[[], list[dict[str, Any]]], control: bool = True) -> None:
        self.by_socket: dict[tuple[str, int], Bmc] = {}
        self.inventory = inventory
        self.control = control
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self._metadata: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point of every request."""
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        bmc = self.by_socket.get(tuple(sockname[:2])) if sockname else None
        if bmc is None:
            return _drop(request)
        if request.path.startswith("/_mock/") and self.control:
            return await self.handle_control(bmc, request)
        try:
            return await self.handle_redfish(bmc, request)
        except RedfishError as error:
            return _error(error)
        except Exception:
            log.exception("%s %s on %s failed", request.method, request.path, bmc.identity.name)
            return _error(RedfishError(500, f"{BASE}.InternalError"))

    async def handle_redfish(self, bmc: Bmc, request: web.Request) -> web.StreamResponse:
        """One Redfish request, with iLO's protocol behaviour and the injected faults."""
        method = request.method
        bmc.counters.requests[method] += 1
        if await _unreachable(bmc):
            return _drop(request)
        raw_path = request.path
        key = raw_path.rstrip("/").lower() or "/"
        reading = method in ("GET", "HEAD")
        if reading and key in PUBLIC_GETS and key != "/redfish/v1":
            return self._document(bmc, key)
        found = routes.route(key)
        public = (reading and key == "/redfish/v1") or (method == "POST" and key in SESSION_LOGINS)
        principal = (
            None
            if public
            else bmc.authenticate(request.headers.get("X-Auth-Token"), request.headers.get("Authorization"))
        )
        if found is None:
            raise not_found(raw_path)
        resource, params = found
        handler = {
            "GET": resource.get,
            "HEAD": resource.get,
            "PATCH": resource.patch,
            "POST": resource.post,
            "DELETE": resource.delete,
        }.get(method)
        if handler is None:
            raise method_not_allowed(method, resource.allow)
        base_url = f"{request.scheme}://{request.host}"
        if reading:
            ctx = Ctx(bmc, params, {}, principal, base_url)
            body = resource.get(ctx) if resource.get is not None else {}
            if "$expand" in request.query and isinstance(body.get("Members"), list):
                body["Members"] = [self._expanded(ctx, member) for member in body["Members"]]
            return _json(200, _with_context(body), {"Allow": resource.allow}, etag=True)
        if_match = request.headers.get("If-Match", "")
        if len(if_match) > 63:
            raise RedfishError(400, f"{ILO}.ETagTooLong")
        raw = await _read_body(request)
        if raw.strip():
            body = parse_json(raw)
        elif method == "PATCH":
            raise RedfishError(400, f"{BASE}.MalformedJSON")
        else:
            body = {}
        ctx = Ctx(bmc, params, body, principal, base_url)
        if principal is not None:
            resources.check_privilege(ctx, resource)
        reply: Reply = await handler(ctx)  # type: ignore[misc]
        return _json(reply.status, reply.body, {"Allow": resource.allow, **reply.headers})

    @staticmethod
    def _expanded(ctx: Ctx, member: Any) -> Any:
        """``$expand`` (``.``, ``*`` or ``~``, one level as iLO does): a member link replaced by the member's body."""
        path = member.get("@odata.id") if isinstance(member, dict) else None
        found = routes.route(path.rstrip("/").lower()) if isinstance(path, str) else None
        if found is None or found[0].get is None:
            return member
        resource, params = found
        try:
            return resource.get(Ctx(ctx.bmc, params, {}, ctx.principal, ctx.base_url))  # type: ignore[misc]
        except RedfishError:
            return member

    def _document(self, bmc: Bmc, key: str) -> web.Response:
        if key == "/redfish":
            return _json(200, {"v1": "/redfish/v1/"})
        if key == "/redfish/v1/odata":
            return _json(200, ODATA_DOCUMENT)
        model = bmc.settings.model
        if model not in self._metadata:
            self._metadata[model] = metadata_document(bmc)
        return web.Response(
            text=self._metadata[model], content_type="application/xml", charset="utf-8", headers=COMMON_HEADERS
        )

    async def handle_control(self, bmc: Bmc, request: web.Request) -> web.Response:
        """``/_mock/{state,counters,faults,fleet}``: test-only inspection and fault injection, no authentication."""
        what = request.path.rstrip("/").removeprefix("/_mock/")
        method = "PUT" if request.method in ("PATCH", "POST") and what == "faults" else request.method
        action = CONTROL.get((what, method))
        if action is None:
            return web.json_response(extended_info((f"{BASE}.ResourceMissingAtURI", [request.path])), status=404)
        try:
            body = parse_json(await _read_body(request)) if method in ("PUT", "PATCH") else {}
            return web.json_response(self.inventory() if what == "fleet" else action(bmc, body))
        except (RedfishError, TypeError, ValueError, KeyError) as error:
            return web.json_response(extended_info((f"{BASE}.PropertyValueFormatError", [str(error)])), status=400)


def apply_state(bmc: Bmc, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /_mock/state: force the host power state, change settings."""
    state = body.get("PowerState")
    if state == "On":
        bmc.host_powered_on()
        bmc.post_state = "FinishedPost"
    elif state == "Off":
        bmc.host_powered_off()
    elif state is not None:
        raise ValueError("PowerState must be On or Off")
    for name, value in body.get("Settings", {}).items():
        if name == "model" and value not in MODELS:
            raise ValueError(f"Settings.model must be one of {', '.join(MODELS)}")
        current = getattr(bmc.settings, name)
        if not isinstance(value, type(current)) and not (isinstance(current, float) and isinstance(value, int)):
            raise TypeError(f"Settings.{name} must be {type(current).__name__}")
        setattr(bmc.settings, name, type(current)(value))
    return bmc.describe()


def apply_faults(bmc: Bmc, body: dict[str, Any]) -> dict[str, Any]:
    """PUT /_mock/faults: switch fault injection (counts, seconds from now, milliseconds)."""
    now = time.monotonic()
    faults = bmc.faults
    known = {
        "unavailable_count",
        "unavailable_seconds",
        "latency_ms",
        "drop_count",
        "lockout_seconds",
        "long_post_seconds",
        "share_503",
        "share_stall",
        "stall_ms",
        "failed_fans",
        "failed_psus",
    }
    if unknown := set(body) - known:
        raise KeyError(f"unknown faults {sorted(unknown)}")
    ratios = {name: float(body.get(name, getattr(faults, name))) for name in ("share_503", "share_stall")}
    if any(not 0 <= ratio <= 1 for ratio in ratios.values()) or sum(ratios.values()) > 1:
        raise ValueError(f"share_503 and share_stall must be in [0, 1] and add up to 1 at most: {ratios}")
    if "unavailable_count" in body:
        faults.unavailable_count = int(body["unavailable_count"])
    if "unavailable_seconds" in body:
        faults.unavailable_until = now + float(body["unavailable_seconds"])
    if "latency_ms" in body:
        faults.latency_ms = float(body["latency_ms"])
    if "drop_count" in body:
        faults.drop_count = int(body["drop_count"])
    if "lockout_seconds" in body:
        faults.lockout_until = now + float(body["lockout_seconds"])
    if "long_post_seconds" in body:
        value = body["long_post_seconds"]
        faults.long_post_seconds = None if value is None else float(value)
    faults.share_503, faults.share_stall = ratios["share_503"], ratios["share_stall"]
    if "stall_ms" in body:
        faults.stall_ms = float(body["stall_ms"])
    for name, count in (("failed_fans", resources.FANS), ("failed_psus", 2)):
        if name in body:
            numbers = body[name]
            if not isinstance(numbers, list) or not all(isinstance(n, int) and 1 <= n <= count for n in numbers):
                raise ValueError(f"{name} must be a list of numbers within 1..{count}")
            setattr(faults, name, sorted(set(numbers)))
    return faults.describe(now)


def _reset_counters(bmc: Bmc, body: dict[str, Any]) -> dict[str, Any]:
    bmc.counters = Counters()
    return bmc.counters.describe()


def _clear_faults(bmc: Bmc, body: dict[str, Any]) -> dict[str, Any]:
    bmc.faults = Faults()
    return bmc.faults.describe(time.monotonic())


CONTROL: dict[tuple[str, str], Callable[[Bmc, dict[str, Any]], Any]] = {
    ("fleet", "GET"): lambda bmc, body: None,
    ("state", "GET"): lambda bmc, body: bmc.describe(),
    ("state", "PATCH"): apply_state,
    ("counters", "GET"): lambda bmc, body: bmc.counters.describe(),
    ("counters", "DELETE"): _reset_counters,
    ("faults", "GET"): lambda bmc, body: bmc.faults.describe(time.monotonic()),
    ("faults", "PUT"): apply_faults,
    ("faults", "DELETE"): _clear_faults,
}
"""The ``/_mock/`` surface: (what, method) -> action on the BMC returning JSON (``fleet`` answers the inventory)."""
