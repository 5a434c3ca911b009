# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetBox for bm.lifecycle: connection options (defined once), a small typed REST client, and the lifecycle operations
built on it (MAC lookup, BMC IP reconciliation, compare-and-set transitions with a per-device Redis lock, journal).

Client
    pynetbox (``pynetbox.api``) on one ``requests`` session, its ``http_session``: keep-alive connections, TLS
    (``verify``: the CA bundle, or off with a warning), the ``Authorization`` and ``User-Agent`` headers. List reads
    and bulk writes on core endpoints go through pynetbox's Endpoint objects (``filter``, ``create(list)``,
    ``update(list)``); everything else (single objects, plugin paths, the row-by-row fallback of :func:`bulk_write`)
    through the same session, so that every request - pynetbox's too - gets one retry policy, timeout and counter
    (:meth:`NetBoxClient._send`). Three tries with exponential backoff on 5xx, timeouts and connection errors; none on
    4xx. A request that may have reached NetBox (sent, then the connection broke) is retried only when it is idempotent
    (GET/PATCH/PUT/DELETE): a POST is retried only when it provably never left (connection refused) or NetBox answered
    502/503/504. ``NetBoxClient.requests`` counts HTTP requests sent, for the stage measurements.

NetBox 4.7 facts encoded here (see the project's reference notes): select custom fields are read as ``{value,label}``
and written as the plain value (:func:`unwrap`); MACs live in ``dcim.mac-addresses`` and are not unique
(:func:`find_mac` returns every match); range filters on custom fields match nulls; tokens ``nbt_<key>.<secret>`` are
v2 and go in ``Authorization: Bearer``.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:
    import pynetbox
    import requests
    import requests.adapters
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
except ImportError as _missing:  # a client fails with a clear message (NetBoxClient); the rest of the file works
    HAS_PYNETBOX = False
    PYNETBOX_IMPORT_ERROR = str(_missing)
else:
    HAS_PYNETBOX = True
    PYNETBOX_IMPORT_ERROR = ""

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    tenant_matches,
    tenant_name,
    unwrap,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import normalize_mac
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisReplyError
from ansible_collections.bm.lifecycle.plugins.module_utils._text import short as _short

URL_ENV = ("NETBOX_API", "NETBOX_URL")
TOKEN_ENV = ("NETBOX_TOKEN",)
DEFAULT_TENANT = "baremetal-staging"
DEVICE_OBJECT_TYPE = "dcim.device"
INTERFACE_OBJECT_TYPE = "dcim.interface"
TRIES = 3
RETRY_STATUSES = frozenset({500, 502, 503, 504})
SAFE_RETRY_STATUSES = frozenset({502, 503, 504})  # the request surely was not processed: even a POST may be retried
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_PAGES = 100
BULK_CHUNK = 50  # objects per bulk write: what a request did is kept if a later one times out
# added to a bulk write's timeout per object: under a 1,000-server burst on 2 busy cores a bulk POST of 100 cables
# took longer than 10 s + 1 s per row; 50 rows now get 110 s, below the bus's 180 s claim_idle_ms
BULK_SECONDS_PER_ROW = 2.0
LOCK_PREFIX = "bm:lock:device:"
POOL_SIZE = 4  # keep-alive connections kept per client (one is used unless a caller shares the client between threads)
# list and bulk paths that go through pynetbox's Endpoint objects; any other path (a plugin's) through its session
ENDPOINT_PATH = re.compile(r"^/api/(?P<app>[a-z]+)/(?P<name>[a-z0-9-]+)/$")
CORE_APPS = frozenset(
    {"circuits", "core", "dcim", "extras", "ipam", "tenancy", "users", "virtualization", "vpn", "wireless"}
)


def netbox_argument_spec() -> dict[str, Any]:
    """The NetBox connection options of every bm.lifecycle module (documented in doc fragment ``bm.lifecycle.netbox``).

    ``env_fallback`` is imported here, not at module level, so this file stays importable without ansible-core.
    """
    from ansible.module_utils.basic import env_fallback  # noqa: PLC0415

    return {
        "netbox_url": {"type": "str", "fallback": (env_fallback, list(URL_ENV))},
        "netbox_token": {"type": "str", "no_log": True, "fallback": (env_fallback, list(TOKEN_ENV))},
        "netbox_validate_certs": {"type": "bool", "default": True},
        "netbox_ca_path": {"type": "path"},
        "netbox_timeout": {"type": "float", "default": 10.0},
    }


class NetBoxError(Exception):
    """A NetBox request failed; ``status`` is the HTTP status (None when NetBox could not be reached)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retryable = retryable


class NetBoxUnreachable(NetBoxError):
    """NetBox did not answer (connection refused or reset, timeout, 5xx) after every try."""


class NetBoxClient:
    """A small NetBox REST client on pynetbox. ``sleep`` is injectable for tests."""

    use_endpoints = True  # list reads and bulk writes through pynetbox's Endpoints (a test's fake answers request())

    def __init__(
        self,
        url: str,
        token: str,
        *,
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: float = 10.0,
        tries: int = TRIES,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        warn: Callable[[str], None] | None = None,
        user_agent: str = "bm.lifecycle",
    ) -> None:
        if not url:
            raise ValueError("NetBox URL missing: set netbox_url or the NETBOX_API environment variable")
        if not token:
            raise ValueError("NetBox token missing: set netbox_token or the NETBOX_TOKEN environment variable")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"NetBox URL must be http(s)://host[:port][/path], got {url!r}")
        if not HAS_PYNETBOX:
            raise ValueError(
                f"the Python library pynetbox is missing ({PYNETBOX_IMPORT_ERROR}): install it in the playbook's Python"
            )
        if parts.scheme == "https" and ca_path:
            ssl.create_default_context(cafile=ca_path)  # a CA bundle that cannot be read fails here, as before
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.netloc = parts.netloc
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.tries = max(1, tries)
        self.backoff = backoff
        self.sleep = sleep
        self._local = threading.local()  # a timeout for the requests pynetbox's Endpoints send (they take none)
        # pynetbox gets no token: it would pick the keyword itself (Bearer only for nbt_<key>.<secret>) on each
        # request; the session's header below is the one rule for every request, Endpoint or not.
        self.api = pynetbox.api(self.url, token=None)
        session = _Transport(self)
        session.trust_env = False  # like before: no proxy, CA bundle or .netrc from the environment
        keyword = "Bearer" if token.startswith("nbt_") else "Token"
        session.headers.update(
            {
                "Authorization": f"{keyword} {token}",
                "Accept": "application/json",
                "User-Agent": user_agent,  # the module's name: NetBox's access log says who asked
            }
        )
        session.verify = ca_path or True
        if self.scheme == "https" and not validate_certs:
            if warn is not None:
                warn(f"TLS verification of NetBox at {self.url} is disabled (netbox_validate_certs=false)")
            session.verify = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # said once, through ``warn``
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.api.http_session = session
        self.http_session = session

    @property
    def requests(self) -> int:
        """HTTP requests sent (a request that never left - connection refused - is not counted)."""
        return self.http_session.sent

    @requests.setter
    def requests(self, value: int) -> None:
        self.http_session.sent = value

    # --- transport ----------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.http_session.close()

    def _on_our_netbox(self, url: str) -> str:
        """``url`` on the NetBox URL we were given. NetBox builds its ``next`` links (which pynetbox follows from the
        third page on) from the name it was reached by; behind a proxy that is another host, scheme or path prefix.
        Such a link is sent to our URL, its ``/api/...`` path and query kept: the token never leaves for another host.
        """
        got = urlsplit(url)
        if (got.scheme, got.netloc) == (self.scheme, self.netloc) and got.path.startswith(self.base_path + "/api/"):
            return url
        api = got.path.find("/api/")
        path = self.base_path + (got.path[api:] if api >= 0 else got.path)
        return urlunsplit((self.scheme, self.netloc, path, got.query, ""))

    def _send(self, method: str, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One request with the retry policy (called by the session for every request, pynetbox's too): the answer
        when it is 2xx, else :class:`NetBoxError` (4xx, at once) or :class:`NetBoxUnreachable` (after the last try).
        """
        session = self.http_session
        method = method.upper()
        url = self._on_our_netbox(url)
        path = _api_path(url, self.base_path)
        kwargs["allow_redirects"] = False  # like before: a redirect is an error, never followed
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = getattr(self._local, "timeout", None) or self.timeout
        last = ""
        for attempt in range(self.tries):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1))
                self.sleep(delay + random.uniform(0, delay / 4))  # noqa: S311 - jitter, not cryptography
            try:
                response = session.send_once(method, url, args, kwargs)
            except requests.RequestException as exc:
                never_left = _never_left(exc)
                if not never_left:
                    session.sent += 1
                last = _describe(exc)
                if not never_left and method not in IDEMPOTENT:
                    raise NetBoxUnreachable(
                        f"NetBox {method} {path} may or may not have been applied: the connection broke after the "
                        f"request was sent ({last}); not retried because {method} is not idempotent",
                        retryable=True,
                    ) from None
                continue
            session.sent += 1
            status = response.status_code
            if status < 300:
                return response
            answer = _decode(response.content)
            if status in RETRY_STATUSES and (method in IDEMPOTENT or status in SAFE_RETRY_STATUSES):
                last = f"HTTP {status}: {_short(answer)}"
                continue
            if status >= 500:
                message = f"NetBox {method} {path}: HTTP {status}: {_short(answer)}"
                raise NetBoxUnreachable(message, status, answer, retryable=True)
            raise NetBoxError(f"NetBox {method} {path}: HTTP {status}: {_short(answer)}", status, answer)
        raise NetBoxUnreachable(
            f"NetBox at {self.url} did not answer {method} {path} after {self.tries} tries ({last})", retryable=True
        )

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """``method`` ``path`` (relative to the API root, e.g. ``/api/dcim/devices/1/``); the decoded JSON answer.
        ``timeout``: seconds for this request's answer (default the client's).

        Raises :class:`NetBoxError` on 4xx (at once) and :class:`NetBoxUnreachable` after the last try.
        """
        response = self.http_session.request(
            method, self.url + path, params=params or None, json=body, timeout=timeout or self.timeout
        )
        return _decode(response.content) if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any, timeout: float | None = None) -> Any:
        """POST ``body``; a list on an endpoint (a bulk create) goes through pynetbox's ``Endpoint.create``."""
        endpoint = self._endpoint(path) if isinstance(body, list) else None
        if endpoint is None:
            return self.request("POST", path, body=body, timeout=timeout)
        with self._pynetbox("POST", path, timeout):
            return _plain(endpoint.create(body))

    def patch(self, path: str, body: Any, timeout: float | None = None) -> Any:
        """PATCH ``body``; a list on an endpoint (a bulk update) goes through pynetbox's ``Endpoint.update``."""
        endpoint = self._endpoint(path) if isinstance(body, list) else None
        if endpoint is None:
            return self.request("PATCH", path, body=body, timeout=timeout)
        with self._pynetbox("PATCH", path, timeout):
            return _plain(endpoint.update(body))

    def _list_by_offset(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """``list`` of a path that is no pynetbox Endpoint (a plugin's): page by page on the same session."""
        offset = 0
        results: list[dict[str, Any]] = []
        for _page in range(MAX_PAGES):
            page = self.request("GET", path, params={**params, "offset": offset})
            batch = page.get("results", []) if isinstance(page, dict) else []
            results.extend(batch)
            if not isinstance(page, dict) or not page.get("next") or not batch:
                return results
            offset += len(batch)
        raise NetBoxError(f"NetBox {path}: more than {MAX_PAGES} pages; narrow the filter")

    def _endpoint(self, path: str) -> Any:
        """pynetbox's Endpoint for a list path ``/api/<app>/<endpoint>/`` of a core app; None for any other path."""
        match = ENDPOINT_PATH.match(path) if self.use_endpoints else None
        if match is None or match["app"] not in CORE_APPS:
            return None
        return getattr(self.api, match["app"]).endpoint(match["name"])

    @contextmanager
    def _pynetbox(self, method: str, path: str, timeout: float | None) -> Iterator[None]:
        """Around a pynetbox Endpoint call: this request's timeout, and pynetbox's own errors as NetBoxError."""
        before = getattr(self._local, "timeout", None)
        self._local.timeout = timeout
        try:
            yield
        except pynetbox.RequestError as exc:  # not raised on our session (it answers 2xx or raises); kept for safety
            status = exc.req.status_code
            answer = _decode(exc.req.content)
            raise NetBoxError(f"NetBox {method} {path}: HTTP {status}: {_short(answer)}", status, answer) from None
        except pynetbox.ContentError as exc:
            status = exc.req.status_code
            answer = _decode(exc.req.content)
            raise NetBoxError(
                f"NetBox {method} {path}: HTTP {status}: not JSON: {_short(answer)}", status, answer
            ) from None
        finally:
            self._local.timeout = before

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every result of a list endpoint (at most ``MAX_PAGES`` pages), through pynetbox's ``Endpoint.filter``."""
        params.setdefault("limit", 200)
        endpoint = self._endpoint(path)
        if endpoint is None:
            return self._list_by_offset(path, params)
        start = self.requests
        results: list[dict[str, Any]] = []
        with self._pynetbox("GET", path, None):
            for record in endpoint.filter(**params):
                if self.requests - start > MAX_PAGES:
                    break
                results.append(dict(record))
        if self.requests - start > MAX_PAGES:
            raise NetBoxError(f"NetBox {path}: more than {MAX_PAGES} pages; narrow the filter")
        return results


if HAS_PYNETBOX:

    class _Transport(requests.Session):
        """pynetbox's ``http_session``: every request - pynetbox's Endpoints' and the client's own - goes through
        :meth:`NetBoxClient._send` (retries, timeout, counter, errors). ``sent`` counts the requests that left."""

        def __init__(self, client: NetBoxClient) -> None:
            super().__init__()
            self.client = client
            self.sent = 0

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
            return self.client._send(str(method), str(url), args, kwargs)

        def send_once(self, method: str, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> requests.Response:
            return super().request(method, url, *args, **kwargs)


def _plain(answer: Any) -> Any:
    """pynetbox's Records as the dicts NetBox sent (``dict(record)`` gives them back unchanged)."""
    if isinstance(answer, list):
        return [dict(record) for record in answer]
    return dict(answer)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests wraps urllib3's errors, which wrap the socket's (at most 8 deep)."""
    current: BaseException | None = exc
    for _depth in range(8):
        if current is None:
            return
        yield current
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        else:
            current = next((a for a in current.args if isinstance(a, BaseException)), None) or current.__cause__


def _never_left(exc: BaseException) -> bool:
    """Whether the request surely never reached NetBox: no connection (refused, no route, name unknown, connect
    timeout) or NetBox's certificate refused in the TLS handshake."""
    return any(
        isinstance(e, (ConnectTimeoutError, requests.exceptions.ConnectTimeout, ssl.SSLCertVerificationError))
        for e in _causes(exc)
    )


def _describe(exc: BaseException) -> str:
    """The innermost cause, as ``Type: message`` (``ConnectionRefusedError: [Errno 111] Connection refused``)."""
    inner = list(_causes(exc))[-1]
    return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__


def _api_path(url: str, base_path: str) -> str:
    """The path of ``url`` relative to NetBox's root (``/api/dcim/devices/``), as the callers name it."""
    path = urlsplit(url).path
    return path[len(base_path) :] if base_path and path.startswith(base_path) else path


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return data.decode("utf-8", "replace")[:500]


def client_from_params(
    params: dict[str, Any], warn: Callable[[str], None] | None = None, user_agent: str = "bm.lifecycle"
) -> NetBoxClient:
    """A client from a module's validated parameters (the options of :func:`netbox_argument_spec`)."""
    return NetBoxClient(
        params.get("netbox_url") or "",
        params.get("netbox_token") or "",
        validate_certs=params.get("netbox_validate_certs", True),
        ca_path=params.get("netbox_ca_path"),
        timeout=params.get("netbox_timeout") or 10.0,
        warn=warn,
        user_agent=user_agent,
    )


# --- small helpers ----------------------------------------------------------------------------------------------------


def device_ref(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record.get("id"), "name": record.get("name")}


def host_of(address: str) -> str:
    return address.split("/", 1)[0]


def oob_host(device: dict[str, Any]) -> str | None:
    """The device's out-of-band (BMC) address without its length, None if it has none."""
    address = (device.get("oob_ip") or {}).get("address")
    return host_of(address) if address else None


BMC_IDENTITY_FIELDS = {"tls_sha256": "bmc_tls_sha256", "uuid": "bmc_uuid"}  # identity key -> custom field


def bmc_facts(device: dict[str, Any]) -> dict[str, Any]:
    """What a stage needs of the device's BMC: ``oob_ip`` and ``bmc_identity`` (what NetBox knows of it, see
    ``_redfish.RedfishClient.identify``: ``tls_sha256``, ``uuid``, only those it has)."""
    fields = device.get("custom_fields") or {}
    known = {key: str(fields[name]).lower() for key, name in BMC_IDENTITY_FIELDS.items() if fields.get(name)}
    return {"oob_ip": oob_host(device), "bmc_identity": known}


def bmc_identity_fields(identity: dict[str, Any]) -> dict[str, str]:
    """The custom fields that record a BMC identity learned on first contact."""
    return {BMC_IDENTITY_FIELDS[key]: str(value) for key, value in identity.items() if key in BMC_IDENTITY_FIELDS}


def read_devices(client: NetBoxClient, device_ids: Iterable[int], chunk: int = 250) -> dict[int, dict[str, Any]]:
    """Devices by id, in one list GET per ``chunk`` ids (NetBox's cost is per request, not per device)."""
    ids = list(dict.fromkeys(int(i) for i in device_ids))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        for record in client.list("/api/dcim/devices/", id=part, limit=len(part)):
            found[int(record["id"])] = record
    return found


def list_in(client: NetBoxClient, path: str, name: str, values: list[Any], **params: Any) -> list[dict[str, Any]]:
    """A list GET filtered by ``name`` in any of ``values`` (100 per request: URLs stay short)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(values), 100):
        rows += client.list(path, **{name: values[start : start + 100]}, **params)
    return rows


def bulk_write(
    client: NetBoxClient, method: str, path: str, rows: list[dict[str, Any]], chunk: int = BULK_CHUNK
) -> list[dict[str, Any] | NetBoxError]:
    """``rows`` POSTed or PATCHed (each PATCH row carries its ``id``) on the list endpoint ``path``, one request per
    ``chunk``; one answer per row, in order: the record NetBox returned, or the :class:`NetBoxError` it gave that row.

    NetBox applies a bulk request all or nothing, so a chunk it refuses (4xx) is sent again one row at a time: only
    the rows NetBox refuses fail. An outage (:class:`NetBoxUnreachable`) raises.
    """
    out: list[dict[str, Any] | NetBoxError] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        timeout = client.timeout + BULK_SECONDS_PER_ROW * len(part)  # NetBox's time grows with the rows (cables: paths)
        try:
            answer = client.patch(path, part, timeout) if method == "PATCH" else client.post(path, part, timeout)
        except NetBoxError as exc:
            if exc.retryable:
                raise
            out += [_write_one(client, method, path, row) for row in part]
            continue
        records = answer if isinstance(answer, list) else []
        if method == "PATCH":
            by_id = {r.get("id"): r for r in records if isinstance(r, dict)}
            out += [by_id.get(row["id"]) or {"id": row["id"]} for row in part]
        else:
            if len(records) != len(part):
                raise NetBoxError(f"NetBox {method} {path}: {len(records)} records for {len(part)} rows")
            out += records
    return out


def _write_one(client: NetBoxClient, method: str, path: str, row: dict[str, Any]) -> dict[str, Any] | NetBoxError:
    """One row of a refused bulk request on its own: the record, or the error NetBox gave it."""
    try:
        if method == "PATCH":
            return dict(client.patch(f"{path}{row['id']}/", {k: v for k, v in row.items() if k != "id"}))
        return dict(client.post(path, row))
    except NetBoxError as exc:
        if exc.retryable:
            raise
        return exc


def resolve_device_ids(client: NetBoxClient, devices: Iterable[int | str]) -> list[int | None]:
    """Ids for devices given by id or by name (one list GET for all the names); None for a name that is not exactly
    one device's."""
    wanted = list(devices)
    names = sorted({d for d in wanted if isinstance(d, str) and not d.isdigit()})
    by_name: dict[str, list[int]] = {}
    for start in range(0, len(names), 100):
        part = names[start : start + 100]
        for record in client.list("/api/dcim/devices/", name=part, brief=1, limit=len(part) * 2):
            by_name.setdefault(str(record.get("name")), []).append(int(record["id"]))
    out: list[int | None] = []
    for d in wanted:
        if isinstance(d, bool):
            out.append(None)
        elif isinstance(d, int) or (isinstance(d, str) and d.isdigit()):
            out.append(int(d))
        else:
            hits = by_name.get(str(d), [])
            out.append(hits[0] if len(hits) == 1 else None)
    return out


def journal(client: NetBoxClient, device_id: int, comments: str, kind: str = "info") -> dict[str, Any]:
    """Write a journal entry on a device."""
    return client.post(
        "/api/extras/journal-entries/",
        {
            "assigned_object_type": DEVICE_OBJECT_TYPE,
            "assigned_object_id": device_id,
            "kind": kind,
            "comments": comments,
        },
    )


def journal_has(client: NetBoxClient, device_id: int, needle: str) -> bool:
    """Whether a journal entry on the device mentions ``needle`` (an event id)."""
    page = client.get(
        "/api/extras/journal-entries/",
        assigned_object_type=DEVICE_OBJECT_TYPE,
        assigned_object_id=device_id,
        q=needle,
        limit=1,
        brief=1,
    )
    return bool(page.get("count")) if isinstance(page, dict) else False


def get_device(client: NetBoxClient, device: int | str) -> dict[str, Any]:
    """A device by id or by name (a name must match exactly one device)."""
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        return client.get(f"/api/dcim/devices/{int(device)}/")
    found = client.get("/api/dcim/devices/", name=device, limit=2)
    results = found.get("results", []) if isinstance(found, dict) else []
    if len(results) != 1:
        raise NetBoxError(f"device {device!r}: {len(results) or 'no'} devices have that name", 404)
    return results[0]


# --- MAC lookup and BMC IP --------------------------------------------------------------------------------------------


def mac_rows(client: NetBoxClient, macs: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every NetBox MAC-address object of each MAC, as ``{mac_id, object_type, interface_id, device_id,
    device_name}``, in one list GET per 100 MACs. MACs are not unique in NetBox: 0, 1 or many per MAC."""
    found: dict[str, list[dict[str, Any]]] = {mac: [] for mac in macs}
    for start in range(0, len(macs), 100):
        for row in client.list("/api/dcim/mac-addresses/", mac_address=macs[start : start + 100]):
            obj = row.get("assigned_object") or {}
            device = obj.get("device") or {}
            mac = normalize_mac(str(row.get("mac_address")))
            found.setdefault(mac, []).append(
                {
                    "mac_id": row.get("id"),
                    "object_type": row.get("assigned_object_type"),
                    "interface_id": row.get("assigned_object_id"),
                    "device_id": device.get("id"),
                    "device_name": device.get("name"),
                }
            )
    return found


def match_leases(client: NetBoxClient, macs: Iterable[str], tenant: str = DEFAULT_TENANT) -> dict[str, dict[str, Any]]:
    """Match DHCP leases' MACs to devices, in three list GETs for the whole batch (MACs, interfaces, devices).

    Returns, per canonical MAC, ``{match, msg, mac, device, interface}`` where ``match`` is

    - ``unknown``: no device has this MAC;
    - ``ambiguous``: several devices (or several BMC interfaces of one device) have it;
    - ``not_bmc``: the MAC is a data NIC's (not on a mgmt-only interface): such a lease never starts anything;
    - ``foreign_tenant``: the device is not in ``tenant``;
    - ``bmc``: the device's BMC interface; ``device`` is the full device record.

    Raises MacError for a MAC that is not one.
    """
    canonical = list(dict.fromkeys(normalize_mac(m) for m in macs))
    rows = mac_rows(client, canonical)
    on_devices = {
        mac: [r for r in found if r["object_type"] == INTERFACE_OBJECT_TYPE and r["device_id"]]
        for mac, found in rows.items()
    }
    iface_ids = sorted({int(r["interface_id"]) for found in on_devices.values() for r in found})
    interfaces = {
        int(i["id"]): i
        for i in (
            client.list("/api/dcim/interfaces/", id=iface_ids, fields="id,name,mgmt_only,device") if iface_ids else []
        )
    }
    out: dict[str, dict[str, Any]] = {}
    wanted_devices: set[int] = set()
    for mac in canonical:
        found = on_devices.get(mac, [])
        base: dict[str, Any] = {"mac": mac, "device": None, "interface": None}
        devices = sorted({(r["device_id"], r["device_name"]) for r in found})
        if not devices:
            others = len(rows.get(mac, []))
            where = f" ({others} not on a device interface)" if others else ""
            out[mac] = {**base, "match": "unknown", "msg": f"MAC {mac} is not known to NetBox{where}"}
            continue
        if len(devices) > 1:
            names = ", ".join(f"{n} (id {i})" for i, n in devices)
            out[mac] = {**base, "match": "ambiguous", "msg": f"MAC {mac} is on {len(devices)} devices: {names}"}
            continue
        ref = {"id": devices[0][0], "name": devices[0][1]}
        iface_rows = [interfaces[int(r["interface_id"])] for r in found if int(r["interface_id"]) in interfaces]
        bmc = [row for row in iface_rows if row.get("mgmt_only")]
        if not bmc:
            names = ", ".join(str(r.get("name")) for r in iface_rows)
            msg = f"MAC {mac} is {ref['name']}'s data interface {names}, not its BMC: this lease starts nothing"
            out[mac] = {**base, "match": "not_bmc", "device": ref, "msg": msg}
        elif len(bmc) > 1:
            out[mac] = {**base, "match": "ambiguous", "device": ref, "msg": f"MAC {mac} is on several BMC interfaces"}
        else:
            out[mac] = {
                **base,
                "match": "bmc",
                "device": ref,
                "interface": {"id": bmc[0]["id"], "name": bmc[0]["name"]},
            }
            wanted_devices.add(int(ref["id"]))
    records = read_devices(client, wanted_devices)
    for mac, found_match in out.items():
        if found_match["match"] != "bmc":
            continue
        device = records.get(int(found_match["device"]["id"]))
        if device is None:
            found_match.update(match="unknown", msg=f"MAC {mac}: its device is gone from NetBox")
        elif not tenant_matches(device, tenant):
            found_match.update(
                match="foreign_tenant", device=device_ref(device),
                msg=f"device {device.get('name')} belongs to {tenant_name(device)}, not {tenant}: not touched",
            )  # fmt: skip
        else:
            name = found_match["interface"]["name"]
            found_match.update(device=device, msg=f"MAC {mac} is the BMC ({name}) of {device.get('name')}")
    return out


def bmc_of(device: dict[str, Any], interfaces: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The lease a device's BMC would ask for, from NetBox's records: ``{mac, ip, interface, msg}``; ``mac`` and ``ip``
    are None (and ``msg`` says why) unless exactly one management-only interface has a MAC and the device an oob_ip."""
    bmcs = [(i, _interface_mac(i)) for i in interfaces if i.get("mgmt_only") and _interface_mac(i)]
    ip = oob_host(device)
    name = device.get("name")
    out: dict[str, Any] = {"mac": None, "ip": None, "interface": None}
    if len(bmcs) != 1:
        return {**out, "msg": f"{name} has {len(bmcs)} management-only interfaces with a MAC in NetBox, not one"}
    mac = normalize_mac(bmcs[0][1])
    interface = {"id": bmcs[0][0].get("id"), "name": bmcs[0][0].get("name")}
    if not ip:
        return {**out, "interface": interface, "msg": f"{name} has no oob_ip in NetBox (its BMC never had a lease)"}
    return {"mac": mac, "ip": ip, "interface": interface, "msg": f"BMC {interface['name']} of {name}: {mac} at {ip}"}


def _interface_mac(interface: dict[str, Any]) -> str | None:
    """An interface's primary MAC, else its only MAC (NetBox 4.2+ keeps them in ``mac_addresses``), else None."""
    primary = interface.get("primary_mac_address")
    if isinstance(primary, dict) and primary.get("mac_address"):
        return str(primary["mac_address"])
    macs = [m.get("mac_address") for m in interface.get("mac_addresses") or [] if isinstance(m, dict)]
    return str(macs[0]) if len(macs) == 1 and macs[0] else None


def device_bmc(client: NetBoxClient, device: int | str) -> dict[str, Any]:
    """:func:`bmc_of` for a device read from NetBox, plus the device record itself (``device``)."""
    record = get_device(client, device)
    interfaces = client.list("/api/dcim/interfaces/", device_id=record["id"], mgmt_only="true")
    return {**bmc_of(record, interfaces), "device": record}


def prefix_lengths(client: NetBoxClient, hosts: Iterable[str]) -> dict[str, int]:
    """The length of the most specific NetBox prefix containing each host (32/128 without one).

    Two requests per distinct enclosing prefix, not one per host: the prefixes containing the first host, then every
    prefix within the most specific of them; the other hosts inside it are answered from that list.
    """
    todo = [ipaddress.ip_address(h) for h in dict.fromkeys(hosts)]
    known: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    out: dict[str, int] = {}
    while todo:
        host = todo.pop(0)
        inside = [n for n in known if host in n]
        if not inside:
            rows = client.list("/api/ipam/prefixes/", contains=str(host), brief=1)
            containing = [ipaddress.ip_network(str(r["prefix"])) for r in rows]
            if containing:
                enclosing = max(containing, key=lambda n: n.prefixlen)
                children = client.list("/api/ipam/prefixes/", within_include=str(enclosing), brief=1)
                known += containing + [ipaddress.ip_network(str(r["prefix"])) for r in children]
            inside = [n for n in known if host in n]
        out[str(host)] = max((n.prefixlen for n in inside), default=128 if host.version == 6 else 32)
    return out


@dataclass
class BmcLease:
    """A lease to record: the device (its record), its BMC interface and the leased address (with or without length)."""

    device: dict[str, Any]
    interface_id: int
    address: str


def _by(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


def _claim(
    lease: BmcLease,
    mine: list[dict[str, Any]],
    elsewhere: list[dict[str, Any]],
    ip_patches: list[dict[str, Any]],
    changes: list[str],
) -> dict[str, Any] | None:
    """The IP object to use for the lease (None: create one); queues the PATCH it needs. NetBoxError (409) when the
    address is assigned to another object."""
    if mine:
        if unwrap(mine[0].get("status")) != "active":
            ip_patches.append({"id": mine[0]["id"], "status": "active"})
            changes.append(f"marked {mine[0]['address']} active")
        return mine[0]
    if not elsewhere:
        return None
    other = elsewhere[0]
    where = other.get("assigned_object") or {}
    if other.get("assigned_object_id"):
        owner = (where.get("device") or where.get("virtual_machine") or {}).get("name", "?")
        raise NetBoxError(
            f"IP {host_of(lease.address)} is already assigned in NetBox to {owner} {where.get('name', '')}; "
            "not moving it to this BMC (fix NetBox or the DHCP pool)",
            409,
        )
    ip_patches.append({"id": other["id"], "status": "active", "assigned_object_type": INTERFACE_OBJECT_TYPE,
                       "assigned_object_id": lease.interface_id})  # fmt: skip
    changes.append(f"assigned existing IP {other['address']} to the BMC interface")
    return other


def reconcile_bmc_ips(
    client: NetBoxClient,
    leases: list[BmcLease],
    *,
    check_mode: bool = False,
    description: str = "BMC address (DHCP lease)",
) -> list[dict[str, Any] | NetBoxError]:
    """Make each lease's address the active IP of its BMC interface and its device's oob_ip, for a batch at once.

    Reads: the IPs of every BMC interface (one request per 100), the IPs held elsewhere for the new addresses (one),
    the prefixes of addresses given without a length (about two per enclosing prefix). Writes: one bulk POST of new
    IPs, one bulk PATCH of IPs (claimed, re-activated, stale ones ``deprecated``), one bulk PATCH of the devices'
    oob_ip. Per lease ``{changed, ip, ip_id, previous_ip, ip_changed, changes}``; ``ip_changed`` is true when the
    device's oob_ip pointed elsewhere (or nowhere) before. An address NetBox holds on another object is not moved: that
    lease's result is a :class:`NetBoxError` (409) and nothing of it is written. The writes go through
    :func:`bulk_write`: a row NetBox refuses makes its lease's result that error, and the lease's later writes are
    not sent. One BMC interface per lease.
    """
    on_iface = _by(
        list_in(client, "/api/ipam/ip-addresses/", "interface_id", sorted({x.interface_id for x in leases})),
        lambda ip: ip.get("assigned_object_id"),
    )
    hosts = {id(x): host_of(x.address) for x in leases}
    mine = {
        id(x): [ip for ip in on_iface.get(x.interface_id, []) if host_of(ip["address"]) == hosts[id(x)]] for x in leases
    }
    lookup = sorted({hosts[id(x)] for x in leases if not mine[id(x)]})
    elsewhere = _by(list_in(client, "/api/ipam/ip-addresses/", "address", lookup), lambda ip: host_of(ip["address"]))
    lengths = prefix_lengths(
        client,
        [hosts[id(x)] for x in leases if not mine[id(x)] and not elsewhere.get(hosts[id(x)]) and "/" not in x.address],
    )
    results: list[dict[str, Any] | NetBoxError] = []
    creates: list[tuple[int, dict[str, Any]]] = []  # (result index, body)
    ip_patches: list[dict[str, Any]] = []
    patch_owner: list[int] = []  # the result index of each of ip_patches
    oob: list[tuple[int, int, int | None]] = []  # (result index, device id, ip id or None: the created one)
    for x in leases:
        host, changes = hosts[id(x)], list[str]()
        try:
            ip_obj = _claim(x, mine[id(x)], elsewhere.get(host, []), ip_patches, changes)
        except NetBoxError as exc:
            results.append(exc)
            continue
        for stale in on_iface.get(x.interface_id, []):
            if host_of(stale["address"]) != host and unwrap(stale.get("status")) == "active":
                ip_patches.append({"id": stale["id"], "status": "deprecated"})
                changes.append(f"marked stale {stale['address']} deprecated")
        patch_owner += [len(results)] * (len(ip_patches) - len(patch_owner))
        cidr = ip_obj["address"] if ip_obj else (x.address if "/" in x.address else f"{host}/{lengths[host]}")
        if ip_obj is None:
            changes.insert(0, f"created IP {cidr} on the BMC interface")
            body = {"address": cidr, "status": "active", "description": description,
                    "assigned_object_type": INTERFACE_OBJECT_TYPE, "assigned_object_id": x.interface_id}  # fmt: skip
            creates.append((len(results), body))
        previous = (x.device.get("oob_ip") or {}).get("address")
        if ip_obj is None or (x.device.get("oob_ip") or {}).get("id") != ip_obj.get("id"):
            changes.append(f"device oob_ip {previous or 'none'} -> {cidr}")
            oob.append((len(results), int(x.device["id"]), None if ip_obj is None else int(ip_obj["id"])))
        results.append({
            "changed": bool(changes), "ip": cidr, "ip_id": None if ip_obj is None else ip_obj.get("id"),
            "previous_ip": previous, "ip_changed": previous is None or host_of(previous) != host, "changes": changes,
        })  # fmt: skip
    if check_mode:
        return results
    made = bulk_write(client, "POST", "/api/ipam/ip-addresses/", [body for _i, body in creates])
    _refused(results, [index for index, _body in creates], made)
    for (index, _body), row in zip(creates, made, strict=True):
        result = results[index]
        if isinstance(result, dict) and isinstance(row, dict):
            result["ip_id"] = row["id"]
    owners = [index for index in patch_owner if isinstance(results[index], dict)]
    patches = [row for index, row in zip(patch_owner, ip_patches, strict=True) if isinstance(results[index], dict)]
    _refused(results, owners, bulk_write(client, "PATCH", "/api/ipam/ip-addresses/", patches))
    oob = [(index, device_id, ip_id) for index, device_id, ip_id in oob if isinstance(results[index], dict)]
    rows = [
        {"id": device_id, "oob_ip": ip_id or results[index]["ip_id"]}  # type: ignore[index]
        for index, device_id, ip_id in oob
    ]
    _refused(results, [index for index, _d, _i in oob], bulk_write(client, "PATCH", "/api/dcim/devices/", rows))
    return results


def _refused(
    results: list[dict[str, Any] | NetBoxError], owners: list[int], answers: list[dict[str, Any] | NetBoxError]
) -> None:
    """Each write NetBox refused becomes the result of the lease it was for (``owners``: result indexes)."""
    for index, answer in zip(owners, answers, strict=True):
        if isinstance(answer, NetBoxError):
            results[index] = answer


# --- the per-device lock ----------------------------------------------------------------------------------------------

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"


class LockBusy(Exception):
    """Another stage holds a device's lock longer than we may wait."""


class DeviceLocks:
    """The locks of a batch of devices: ``SET bm:lock:device:<id> <random> NX PX ttl`` for each, in one pipeline per
    try; released only by their holder (compare-and-delete in Lua), all in one pipeline.

    A device whose lock another run holds past ``wait`` is left out: ``busy`` lists it, ``held`` the others.
    """

    def __init__(
        self,
        redis: RedisClient,
        device_ids: Iterable[int],
        ttl: float = 30.0,
        wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.ids = list(dict.fromkeys(int(i) for i in device_ids))
        self.ttl_ms = max(1, int(ttl * 1000))
        self.wait = wait
        self.sleep = sleep
        self.value = secrets.token_hex(16)
        self.held: list[int] = []
        self.busy: list[int] = []

    def __enter__(self) -> DeviceLocks:
        deadline = time.monotonic() + self.wait
        pause = 0.05
        todo = list(self.ids)
        while todo:
            replies = self.redis.pipeline(
                [("SET", f"{LOCK_PREFIX}{i}", self.value, "NX", "PX", self.ttl_ms) for i in todo]
            )
            self.held += [i for i, r in zip(todo, replies, strict=True) if r is not None]
            todo = [i for i, r in zip(todo, replies, strict=True) if r is None]
            if not todo or time.monotonic() >= deadline:
                break
            self.sleep(pause)
            pause = min(pause * 2, 0.5)
        self.busy = todo
        return self

    def require(self) -> None:
        """Raise LockBusy unless every lock is held."""
        if self.busy:
            keys = ", ".join(f"{LOCK_PREFIX}{i}" for i in self.busy)
            raise LockBusy(f"device lock {keys} is held by another stage; not waiting longer")

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with suppress(OSError, RedisReplyError):  # else they expire on their own
                self.redis.pipeline([("EVAL", _RELEASE, 1, f"{LOCK_PREFIX}{i}", self.value) for i in self.held])
