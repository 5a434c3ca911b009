# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small typed Redfish client for HPE iLO 5 and 6, its one transport, and the BMC connection options every Redfish
module shares.

One transport for every BMC call of the collection: aiohttp (imported guarded: ``HAS_AIOHTTP``; without it a Redfish
call fails naming the package). A step's BMCs share one :class:`HTTPPool` - one aiohttp session, at most
``concurrency`` connections, one TLS context per choice - in one event loop: the stages' synchronous step code runs
its per-BMC work in threads (:func:`on_bmcs`) and each :class:`RedfishClient` sends through the loop of the step's
:class:`RedfishBatch`; the metrics poller, asynchronous, awaits the same clients in its own loop.

What it does for every caller, in one place (``RedfishClient._send_async``):
- TLS verification is an explicit choice: ``ca_path`` (a CA bundle file or directory, per site or per BMC) or
  ``validate_certs: false``, which warns on every use. Never a silent ``verify=False``. A certificate that fails
  verification is :class:`RedfishTLSError` (never retried), saying to give the CA.
- Bounded exponential backoff (with jitter, honouring ``Retry-After``) on HTTP 503, on the busy MessageIds
  (``ServiceTemporarilyUnavailable``, ``ResourceTemporarilyUnavailable``, ``DeviceIsBusy``), on connection errors and
  timeouts. A POST is retried after a connection error only when the request never left (connect failed,
  :class:`NotSent`): a reset must not run twice. Each BMC has its own retries and deadline.
- No retry on 401: :class:`RedfishAuthError` says "wrong credentials".
- PATCH sends ``If-Match`` with the ETag of the last GET of that resource (iLO accepts weak tags); a 412 refreshes the
  ETag once.
- MessageIds are compared by suffix (``Base.1.4.Success`` and ``Base.1.18.Success`` are the same message).
- Errors carry the ``@Message.ExtendedInfo`` MessageIds and arguments, never a password or token.
- ``auth: basic`` (default; nothing to leak) or ``auth: session``: the session is always deleted on close.
- The BMC's identity before any credential (:meth:`RedfishClient.identify`): with ``validate_certs: false`` the
  certificate is pinned (trust on first use, its SHA-256 kept with the device in NetBox) and checked on every
  connection before a request leaves; the service root's ``UUID`` is checked where NetBox knows it.
  :class:`RedfishIdentityError` otherwise, never retried.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.client
import importlib.util
import inspect
import json
import os
import random
import re
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import DEFAULT_CONCURRENCY, active, concurrently, fail

if TYPE_CHECKING:
    import aiohttp

# aiohttp is imported on first use (HTTPPool), not by every module that imports this file (through _module): its
# import costs about 0.3 s of CPU, which only the steps that talk to BMCs should pay. Without it, a Redfish call fails
# naming the package (missing_aiohttp).
HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None
AIOHTTP_IMPORT_ERROR: str | None = None if HAS_AIOHTTP else "No module named 'aiohttp'"

BMC_USERNAME_ENV = "BM_BMC_USERNAME"
BMC_PASSWORD_ENV = "BM_BMC_PASSWORD"  # noqa: S105 - the name of an environment variable, not a password
BMC_CA_PATH_ENV = "BM_BMC_CA_PATH"
BMC_VALIDATE_CERTS_ENV = "BM_BMC_VALIDATE_CERTS"

T = TypeVar("T")

BUSY_MESSAGES = ("ServiceTemporarilyUnavailable", "ResourceTemporarilyUnavailable", "DeviceIsBusy")
SYSTEM = "/redfish/v1/Systems/1"
MANAGER = "/redfish/v1/Managers/1"
ROOT = "/redfish/v1/"
SYSTEMS = "/redfish/v1/Systems/"
CHASSIS = "/redfish/v1/Chassis/"
SESSIONS = "/redfish/v1/SessionService/Sessions"
UUID_FORM = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")  # as NetBox keeps it

# The BMC connection options, defined once; documented once in doc_fragments/bmc.py.
BMC_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "address": {"type": "str", "aliases": ["baseuri"]},
    "batch": {"type": "list", "elements": "dict"},
    "addresses": {"type": "dict", "default": {}},
    "credentials": {"type": "dict", "default": {}, "no_log": True},
    "concurrency": {"type": "int", "default": 32},
    "port": {"type": "int", "default": 443},
    "username": {"type": "str", "fallback": (env_fallback, [BMC_USERNAME_ENV])},
    "password": {"type": "str", "no_log": True, "fallback": (env_fallback, [BMC_PASSWORD_ENV])},
    "ca_path": {"type": "path", "fallback": (env_fallback, [BMC_CA_PATH_ENV])},
    "validate_certs": {"type": "bool", "default": True, "fallback": (env_fallback, [BMC_VALIDATE_CERTS_ENV])},
    "auth": {"type": "str", "default": "basic", "choices": ["basic", "session"]},
    "timeout": {"type": "float", "default": 30.0},
    "retries": {"type": "int", "default": 5},
}


BMC_TARGET_RULES = {"required_one_of": [("address", "batch")], "mutually_exclusive": [("address", "batch")]}


def bmc_argument_spec(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A fresh copy of the BMC options, plus a module's own (give the module ``**BMC_TARGET_RULES`` too)."""
    spec = {name: dict(option) for name, option in BMC_ARGUMENT_SPEC.items()}
    spec.update(extra)
    return spec


def require_credentials(params: Mapping[str, Any]) -> None:
    """Raise ValueError unless the module's BMC O(username) and O(password) are set (options or environment)."""
    if not params.get("username") or not params.get("password"):
        raise ValueError("BMC credentials missing: set username and password (or BM_BMC_USERNAME/PASSWORD)")


def bmc_params_for(params: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """The connection options of one batch item's BMC: its address from O(addresses) (by device name) or the
    device's oob_ip, its credentials from O(credentials) (by device name) or the module's username/password.

    Raises ValueError (the item's failure) when the device has no BMC address or no credentials are known.
    """
    name = str((item.get("device") or {}).get("name") or "")
    address = (params.get("addresses") or {}).get(name) or (item.get("facts") or {}).get("oob_ip")
    if not address:
        raise ValueError(f"{name}: no BMC address (no oob_ip in NetBox, none in addresses)")
    login = (params.get("credentials") or {}).get(name) or {}
    username = login.get("username") or params.get("username")
    password = login.get("password") or params.get("password")
    if not username or not password:
        raise ValueError(f"{name}: no BMC credentials (credentials, username/password or BM_BMC_USERNAME/PASSWORD)")
    return {**params, "address": str(address), "username": username, "password": password}


# --- errors -------------------------------------------------------------------------------------------------------


def message_ids(body: Any) -> list[str]:
    """The MessageIds of an iLO answer (``error.@Message.ExtendedInfo``, top-level, or legacy ``Messages``)."""
    if not isinstance(body, Mapping):
        return []
    infos: list[Any] = []
    error = body.get("error")
    if isinstance(error, Mapping):
        infos.extend(error.get("@Message.ExtendedInfo") or [])
    infos.extend(body.get("@Message.ExtendedInfo") or [])
    infos.extend(body.get("Messages") or [])
    return [str(i["MessageId"]) for i in infos if isinstance(i, Mapping) and "MessageId" in i]


def extended_info(body: Any) -> list[dict[str, Any]]:
    """``@Message.ExtendedInfo`` entries (MessageId and MessageArgs only)."""
    if not isinstance(body, Mapping):
        return []
    error = body.get("error")
    infos = (
        (error.get("@Message.ExtendedInfo") if isinstance(error, Mapping) else None)
        or body.get("@Message.ExtendedInfo")
        or []
    )
    return [
        {"MessageId": i.get("MessageId"), "MessageArgs": i.get("MessageArgs", [])}
        for i in infos
        if isinstance(i, Mapping)
    ]


def has_message(ids: Iterable[str], *names: str) -> bool:
    """Whether one of ``ids`` is one of ``names``, compared by suffix: registry versions vary by firmware."""
    wanted = set(names)
    return any(mid.rsplit(".", 1)[-1] in wanted for mid in ids)


class RedfishError(Exception):
    """A Redfish request failed; ``str()`` names the request, the status and the BMC's MessageIds."""

    def __init__(self, message: str, status: int | None = None, body: Any = None, method: str = "", path: str = ""):
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        self.message_ids = message_ids(body)
        self.extended_info = extended_info(body)
        details = []
        for info in self.extended_info:
            args = info.get("MessageArgs") or []
            details.append(f"{info['MessageId']}{tuple(args) if args else ''}")
        text = message + (f" [{'; '.join(details)}]" if details else "")
        super().__init__(text)

    def has(self, *names: str) -> bool:
        """Whether the BMC answered with one of these MessageIds (by suffix)."""
        return has_message(self.message_ids, *names)


class RedfishAuthError(RedfishError):
    """HTTP 401: the credentials are wrong (never retried)."""


class RedfishUnavailableError(RedfishError):
    """The BMC could not be reached, or stayed busy, through every retry; ``last`` says how the last try failed."""

    def __init__(self, message: str, *args: Any, last: str = "", **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        self.last = last or message


class RedfishTLSError(RedfishError):
    """The BMC's certificate failed verification (never retried)."""


class RedfishIdentityError(RedfishError):
    """The BMC is not the one NetBox knows (another pinned certificate, another service UUID): nothing was sent to it
    but unauthenticated reads, never retried."""


def _sent_errors() -> tuple[type[Exception], ...]:
    """The errors of a request that may have left (the BMC may have carried it out)."""
    loaded = sys.modules.get("aiohttp")
    return (OSError, http.client.HTTPException) + ((loaded.ClientError,) if loaded is not None else ())


# --- transport ----------------------------------------------------------------------------------------------------


class Response:
    """One HTTP answer: status, headers (lower-case names), parsed JSON body (or None)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    @property
    def message_ids(self) -> list[str]:
        """The MessageIds of the answer."""
        return message_ids(self.body)

    def has(self, *names: str) -> bool:
        """Whether the answer carries one of these MessageIds (by suffix)."""
        return has_message(self.message_ids, *names)


class NotSent(Exception):
    """A connection error before the request left: always safe to retry."""


class CertificateMismatch(Exception):
    """The BMC presented another certificate than the pinned one; the request never left. ``str()`` is its SHA-256."""


Answer = tuple[int, dict[str, str], bytes]


# A transport takes (method, path, headers, body bytes or None, timeout) and returns (status, headers, body bytes),
# directly or as an awaitable. It raises NotSent when the request never left, ssl.SSLCertVerificationError when the
# BMC's certificate fails verification, CertificateMismatch when it is not the pinned one, anything else (OSError,
# aiohttp.ClientError...) when the request may have left. A transport that can pin has ``pin`` (SHA-256 bytes or
# None) and ``peer_sha256`` (hex of the certificate its last connection saw).
class Transport(Protocol):
    """Sends one request to one BMC: (method, path, headers, body, timeout) -> (status, headers, body)."""

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> Answer | Awaitable[Answer]:
        """Send; raise NotSent if the request never left."""


def ssl_context(ca_path: str | None, validate_certs: bool) -> ssl.SSLContext:
    """The TLS context of an explicit choice: the CA at ``ca_path``, the system CAs, or no verification."""
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_path:
        if os.path.isdir(ca_path):
            return ssl.create_default_context(capath=ca_path)
        return ssl.create_default_context(cafile=ca_path)
    return ssl.create_default_context()


def missing_aiohttp(reason: str | None = None) -> RedfishError:
    """The error of a Redfish call without aiohttp installed (names the package)."""
    return RedfishError(
        "the Python package aiohttp is required to talk to BMCs (Redfish), on the Python that runs the modules: "
        f"pip install aiohttp ({reason or AIOHTTP_IMPORT_ERROR})"
    )


class HTTPPool:
    """The HTTP of many BMCs over one aiohttp session, opened in the event loop that first sends: at most ``limit``
    connections at once (kept alive per BMC), one TLS context per (``ca_path``, ``validate_certs``), no cookies.

    Raises RedfishError naming the package when aiohttp is missing."""

    def __init__(self, limit: int = DEFAULT_CONCURRENCY) -> None:
        if not HAS_AIOHTTP:
            raise missing_aiohttp()
        try:
            import aiohttp  # noqa: PLC0415, F401 - on first use (see HAS_AIOHTTP)
        except ImportError as error:
            raise missing_aiohttp(str(error)) from None
        self.limit = max(1, limit)
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # new connections only (a BMC after its reset)
        self._contexts: dict[tuple[str | None, bool], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context(self, ca_path: str | None, validate_certs: bool) -> ssl.SSLContext:
        """The TLS context of this choice, built once."""
        key = (ca_path or None, bool(validate_certs))
        with self._lock:
            if key not in self._contexts:
                self._contexts[key] = ssl_context(*key)
            return self._contexts[key]

    def bind(self, host: str, port: int, context: ssl.SSLContext) -> BMCTransport:
        """The transport of one BMC over this pool."""
        return BMCTransport(self, host, port, context)

    async def send(
        self,
        bmc: BMCTransport,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        socket_timeout: float,
    ) -> Answer:
        """One request; the answer (status, headers, body), or NotSent, ssl.SSLCertVerificationError, or the error
        of a request that may have left (aiohttp.ClientError, OSError)."""
        import aiohttp  # noqa: PLC0415 - loaded by __init__ (see HAS_AIOHTTP)

        session = self._open(fresh=bmc.fresh)
        limits = aiohttp.ClientTimeout(total=None, sock_connect=socket_timeout, sock_read=socket_timeout)
        try:
            async with session.request(
                method,
                bmc.base + path,
                headers=headers,
                data=body,
                ssl=aiohttp.Fingerprint(bmc.pin) if bmc.pin else bmc.context,
                timeout=limits,
                allow_redirects=False,
            ) as answer:
                return answer.status, dict(answer.headers), await answer.read()
        except aiohttp.ServerFingerprintMismatch as error:  # checked on connecting, before the request is written
            raise CertificateMismatch(error.got.hex()) from None
        except aiohttp.ClientConnectorCertificateError as error:
            cause = error.certificate_error
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise cause from None
            raise ssl.SSLCertVerificationError(str(cause)) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"{type(error).__name__}: {error}") from None

    def _open(self, fresh: bool) -> aiohttp.ClientSession:
        import aiohttp  # noqa: PLC0415 - loaded by __init__ (see HAS_AIOHTTP)

        session = self._fresh if fresh else self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, ttl_dns_cache=300, force_close=fresh)
            session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=None)
            )
            if fresh:
                self._fresh = session
            else:
                self._session = session
        return session

    async def aclose(self) -> None:
        """Close the sessions and their connections."""
        sessions, self._session, self._fresh = (self._session, self._fresh), None, None
        for session in sessions:
            if session is not None:
                await session.close()


class BMCTransport:
    """The transport of one BMC over an :class:`HTTPPool` (a coroutine per request).

    ``close()`` (the client's, and before every poll while a reset BMC comes back) means: no connection opened before
    now is used again for this BMC; from then on each request has a new connection, as a connection kept alive
    across a BMC's reset is dead, and a POST sent on one must not be lost."""

    def __init__(self, pool: HTTPPool, host: str, port: int, context: ssl.SSLContext) -> None:
        self.pool = pool
        self.base = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
        self.context = context
        self.fresh = False
        self.pin: bytes | None = None  # SHA-256 of the only certificate a connection may present

    def close(self) -> None:
        """Use new connections only from now on."""
        self.fresh = True

    async def certificate_sha256(self, timeout: float) -> str:  # noqa: ASYNC109 - the connection's own limit
        """The SHA-256 (hex) of the certificate the BMC presents, from a TLS handshake alone (no HTTP). Raises
        NotSent when it cannot be reached."""
        host, port = urlsplit(self.base).hostname or "", urlsplit(self.base).port or 443
        unverified = ssl_context(None, validate_certs=False)
        try:
            async with asyncio.timeout(timeout):
                _reader, writer = await asyncio.open_connection(host, port, ssl=unverified)
        except (OSError, TimeoutError) as error:
            raise NotSent(f"{type(error).__name__}: {error}") from None
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        return hashlib.sha256(der).hexdigest()

    async def __call__(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - the limit of each socket operation, not the call's deadline
    ) -> Answer:
        """Send over the pool's session."""
        return await self.pool.send(self, method, path, headers, body, socket_timeout=timeout)


class LoopThread:
    """One asyncio event loop running in one daemon thread: synchronous code runs coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bm-redfish-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from any thread but the loop's own)."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a synchronous Redfish call from inside its own event loop would never return")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class RedfishBatch:
    """The Redfish HTTP of one step over many BMCs, for synchronous code: one event loop in one background thread
    with one :class:`HTTPPool` (at most ``concurrency`` connections). Each :class:`RedfishClient` made with it sends
    its requests there (``run``), so a step's threads share one session. Close it (or use ``with``) at the end."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.concurrency = max(1, concurrency)
        self._pool: HTTPPool | None = None
        self._loop: LoopThread | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> HTTPPool:
        """The session pool (created on first use; RedfishError without aiohttp)."""
        with self._lock:
            if self._pool is None:
                self._pool = HTTPPool(self.concurrency)
            return self._pool

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the batch's loop (started on first use) and return its result."""
        with self._lock:
            if self._loop is None:
                self._loop = LoopThread()
            loop = self._loop
        return loop.run(coroutine)

    def close(self) -> None:
        """Close the session, then stop the loop."""
        with self._lock:
            loop, self._loop = self._loop, None
            pool = self._pool
        if loop is None:
            return
        try:
            if pool is not None:
                loop.run(pool.aclose())
        finally:
            loop.stop()

    def __enter__(self) -> RedfishBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- client -------------------------------------------------------------------------------------------------------


class RedfishClient:
    """A Redfish service on one BMC. Use as a context manager so that a session is always deleted.

    Every request goes through one async path (``request_async``: authentication, the retry policy, the errors).
    Synchronous code calls the plain methods (``get``, ``patch``...), which run it on the client's
    :class:`RedfishBatch` (its own batch of one when none is given); asynchronous code (the metrics poller) awaits
    ``get_async``/``request_async`` in its own loop, over an :class:`HTTPPool` given as ``pool``.
    """

    def __init__(
        self,
        address: str,
        username: str,
        password: str,
        *,
        port: int = 443,
        ca_path: str | None = None,
        validate_certs: bool = True,
        auth: str = "basic",
        timeout: float = 30.0,
        retries: int = 5,
        warn: Callable[[str], None] | None = None,
        transport: Transport | None = None,
        batch: RedfishBatch | None = None,
        pool: HTTPPool | None = None,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        host, port = split_address(address, port)
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.auth = auth
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.sleep = sleep  # None: asyncio.sleep between retries, time.sleep while waiting for a reset BMC
        self.etags: dict[str, str] = {}
        self.requests = 0
        self.retried = 0
        self._token: str | None = None
        self._session_path: str | None = None
        self._batch = batch
        self._owns_batch = False
        if not validate_certs:
            message = (
                f"TLS certificate verification is disabled for BMC {host}:{port} (validate_certs=false); "
                "set ca_path to the BMC's CA bundle instead"
            )
            (warn or _no_warn)(message)
        if transport is None:
            pool = pool or self._sync_batch().pool
            transport = pool.bind(host, port, pool.context(ca_path, validate_certs))
        self.transport: Transport = transport

    @property
    def display(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def __enter__(self) -> RedfishClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync_batch(self) -> RedfishBatch:
        if self._batch is None:
            self._batch = RedfishBatch(1)
            self._owns_batch = True
        return self._batch

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._sync_batch().run(coroutine)

    def set_password(self, password: str) -> None:
        """Use a new password from now on (after changing the connecting account's password)."""
        self._password = password

    def password_is(self, password: str) -> bool:
        """Whether ``password`` is the one this client logs in with (constant-time compare)."""
        return hmac.compare_digest(self._password.encode(), password.encode())

    # sessions
    def login(self) -> None:
        """Open a session (``auth: session``); Basic auth needs none."""
        self._run(self.login_async())

    async def login_async(self) -> None:
        """:meth:`login`, awaited."""
        if self.auth != "session" or self._token:
            return
        body = {"UserName": self.username, "Password": self._password}
        answer = await self._send_async("POST", SESSIONS, body, authenticate=False)
        token = answer.headers.get("x-auth-token")
        if answer.status not in (200, 201) or not token:
            raise RedfishError(
                f"BMC {self.display}: login as {self.username!r} returned HTTP {answer.status} without a token",
                answer.status,
                answer.body,
                "POST",
                SESSIONS,
            )
        self._token = token
        location = answer.headers.get("location") or (answer.body or {}).get("@odata.id", "")
        self._session_path = urlsplit(location).path or None

    def logout(self) -> None:
        """Delete the session if there is one (errors ignored: the BMC may be rebooting)."""
        if self._token and self._session_path:
            self._run(self.logout_async())
        self._token = self._session_path = None

    async def logout_async(self) -> None:
        """:meth:`logout`, awaited."""
        path, self._session_path = self._session_path, None
        if self._token and path:
            with contextlib.suppress(RedfishError):
                await self._send_async("DELETE", path, None, retry=False)
        self._token = None

    def close(self) -> None:
        """Delete the session and close the connection (and the client's own batch, if it made one)."""
        try:
            self.logout()
        finally:
            close = getattr(self.transport, "close", None)
            if close is not None:
                close()
            if self._owns_batch and self._batch is not None:
                self._batch.close()
                self._batch = None
                self._owns_batch = False

    # identity
    def identify(self, known: Mapping[str, Any] | None) -> dict[str, str]:
        """:meth:`identify_async`, from synchronous code."""
        return self._run(self.identify_async(known))

    async def identify_async(self, known: Mapping[str, Any] | None) -> dict[str, str]:
        """Make sure this is the BMC NetBox knows before any credential goes to it; return what to record.

        ``known`` is what NetBox keeps with the device: ``tls_sha256`` (the pinned certificate) and ``uuid`` (the
        service root's UUID). Without certificate verification (``validate_certs: false``) a known pin is enforced on
        every connection from now on, with no request; an unknown one is read from a TLS handshake and pinned (trust
        on first use). Then, unless a pin was known, one unauthenticated GET of the service root (over the pinned
        certificate) checks its UUID where NetBox knows it. Returns ``{tls_sha256, uuid}`` for what NetBox did not
        know yet. Raises RedfishIdentityError on a mismatch, RedfishUnavailableError when the BMC cannot be reached.
        """
        known = known or {}
        pinning = not self.validate_certs
        if pinning and known.get("tls_sha256"):
            self._pin(str(known["tls_sha256"]))
            return {}
        seen = await self._certificate_sha256() if pinning else None
        if seen:
            self._pin(seen)
        root = (await self._send_async("GET", ROOT, None, authenticate=False)).body
        stated = str((root if isinstance(root, dict) else {}).get("UUID") or "").lower()
        expected = str(known.get("uuid") or "").lower()
        if expected and stated != expected:
            raise RedfishIdentityError(
                f"BMC {self.display} states service UUID {stated or '(none)'}, NetBox knows {expected} for this "
                "device: not the BMC NetBox knows, no credential sent",
                method="GET",
                path=ROOT,
            )
        learned = {"uuid": stated} if UUID_FORM.match(stated) and not expected else {}
        return learned | ({"tls_sha256": seen} if seen else {})

    async def _certificate_sha256(self) -> str | None:
        """The certificate the BMC presents (bounded retries while it cannot be reached); None for a transport that
        cannot tell (tests' fakes)."""
        read = getattr(self.transport, "certificate_sha256", None)
        if read is None:
            return None
        for attempt in range(self.retries + 1):
            try:
                return str(await read(self.timeout))
            except NotSent as error:
                if attempt >= self.retries:
                    raise RedfishUnavailableError(
                        f"BMC {self.display}: cannot read its TLS certificate: {error}", last=str(error)
                    ) from None
                self.requests += 1
                await asyncio.sleep(min(self.backoff_max, self.backoff * (2**attempt)))
        return None

    def _pin(self, sha256_hex: str) -> None:
        """Accept only the certificate with this SHA-256 from now on (transports that cannot pin ignore it)."""
        if hasattr(self.transport, "pin"):
            self.transport.pin = bytes.fromhex(sha256_hex.replace(":", ""))

    def check_credentials(self, username: str, password: str) -> bool:
        """Whether the BMC accepts these credentials: one Basic-authenticated GET (no session, nothing written).

        Raises on anything but a 2xx or a 401.
        """
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        try:
            self._send(
                "GET",
                "/redfish/v1/SessionService",
                None,
                headers={"Authorization": "Basic " + pair},
                authenticate=False,
            )
        except RedfishAuthError:
            return False
        return True

    # requests
    def get(self, path: str) -> dict[str, Any]:
        """GET a resource's JSON; remembers its ETag for a later PATCH."""
        return self._run(self.get_async(path))

    async def get_async(self, path: str) -> dict[str, Any]:
        """:meth:`get`, awaited."""
        answer = await self.request_async("GET", path)
        etag = answer.headers.get("etag") or (answer.body if isinstance(answer.body, dict) else {}).get("@odata.etag")
        if etag:
            self.etags[_key(path)] = etag
        return answer.body if isinstance(answer.body, dict) else {}

    def patch(self, path: str, body: Mapping[str, Any]) -> Response:
        """PATCH with If-Match from the last GET; a 412 refreshes the ETag once."""
        return self._run(self.patch_async(path, body))

    async def patch_async(self, path: str, body: Mapping[str, Any]) -> Response:
        """:meth:`patch`, awaited."""
        try:
            return await self.request_async("PATCH", path, body, headers=self._if_match(path))
        except RedfishError as error:
            if error.status != 412:
                raise
            await self.get_async(path)
            return await self.request_async("PATCH", path, body, headers=self._if_match(path))

    def post(self, path: str, body: Mapping[str, Any]) -> Response:
        """POST (actions, creations)."""
        return self.request("POST", path, body)

    def delete(self, path: str) -> Response:
        """DELETE a member."""
        return self.request("DELETE", path)

    def _if_match(self, path: str) -> dict[str, str]:
        etag = self.etags.get(_key(path))
        return {"If-Match": etag} if etag else {}

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One authenticated request; a 2xx answer or an exception. Re-logs in once if the session ended."""
        return self._run(self.request_async(method, path, body, headers))

    async def request_async(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """:meth:`request`, awaited."""
        await self.login_async()
        try:
            return await self._send_async(method, path, body, headers=headers)
        except RedfishAuthError:
            if self.auth != "session" or not self._token:
                raise
            self._token = self._session_path = None  # the session ended (BMC reset, idle timeout): log in again
            await self.login_async()
            return await self._send_async(method, path, body, headers=headers)

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        headers: dict[str, str] | None = None,
        authenticate: bool = True,
        retry: bool = True,
    ) -> Response:
        return self._run(self._send_async(method, path, body, headers=headers, authenticate=authenticate, retry=retry))

    def _request_parts(
        self, body: Mapping[str, Any] | None, headers: dict[str, str] | None, *, authenticate: bool
    ) -> tuple[dict[str, str], bytes | None]:
        """The headers (with the credential when ``authenticate``) and the JSON body of a request."""
        all_headers = {"Accept": "application/json", "OData-Version": "4.0"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if authenticate:
            if self._token:
                all_headers["X-Auth-Token"] = self._token
            else:
                pair = f"{self.username}:{self._password}".encode()
                all_headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        all_headers.update(headers or {})
        return all_headers, data

    async def _send_async(  # noqa: PLR0912 - one place for the whole retry policy
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        headers: dict[str, str] | None = None,
        authenticate: bool = True,
        retry: bool = True,
    ) -> Response:
        all_headers, data = self._request_parts(body, headers, authenticate=authenticate)
        attempts = self.retries + 1 if retry else 1
        last: Exception | None = None
        for attempt in range(attempts):
            delay: float | None = None
            try:
                self.requests += 1
                sent = self.transport(method, path, all_headers, data, self.timeout)
                status, answer_headers, raw = await sent if inspect.isawaitable(sent) else sent
            except CertificateMismatch as error:
                raise RedfishIdentityError(
                    f"BMC {self.display} presents another TLS certificate (SHA-256 {error}) than the one NetBox pins "
                    "for this device: not the BMC NetBox knows, no credential sent. If its certificate was replaced "
                    "on purpose, clear the device's bmc_tls_sha256 in NetBox and re-run",
                    method=method,
                    path=path,
                ) from None
            except ssl.SSLCertVerificationError as error:
                raise RedfishTLSError(
                    f"TLS certificate of BMC {self.display} failed verification "
                    f"({error.verify_message or error}); give its CA with ca_path",
                    method=method,
                    path=path,
                ) from None
            except NotSent as error:
                last = error
            except _sent_errors() as error:
                last = error
                if method == "POST":
                    # the request may have been carried out: never run an action twice
                    raise RedfishUnavailableError(
                        f"BMC {self.display}: connection lost during {method} {path} ({error!r}); not retried",
                        method=method,
                        path=path,
                        last=repr(error),
                    ) from None
            else:
                answer = Response(status, answer_headers, _parse(raw))
                if 200 <= status < 300:
                    return answer
                if status == 401:
                    raise RedfishAuthError(
                        f"BMC {self.display} rejected the credentials of user {self.username!r} on {method} {path} "
                        "(HTTP 401): wrong username or password, or the account is locked out",
                        status,
                        answer.body,
                        method,
                        path,
                    )
                busy = status == 503 or answer.has(*BUSY_MESSAGES)
                if not busy:
                    raise RedfishError(
                        f"BMC {self.display}: {method} {path} failed with HTTP {status}",
                        status,
                        answer.body,
                        method,
                        path,
                    )
                last = RedfishError(f"HTTP {status}", status, answer.body, method, path)
                delay = _retry_after(answer.headers.get("retry-after"))
            if attempt + 1 >= attempts:
                break
            self.retried += 1
            wait = min(self.backoff_max, self.backoff * (2**attempt))
            wait = max(wait, min(delay or 0.0, self.backoff_max))
            wait *= 0.8 + 0.4 * random.random()  # noqa: S311 - jitter, not cryptography
            if self.sleep is None:
                await asyncio.sleep(wait)
            else:
                self.sleep(wait)
        raise RedfishUnavailableError(
            f"BMC {self.display}: {method} {path} still failing after {attempts} attempt(s): {last}",
            getattr(last, "status", None),
            getattr(last, "body", None),
            method,
            path,
            last=f"{last} after {attempts} attempt(s)",
        )

    # readiness
    def wait_until_ready(self, timeout: float, interval: float = 2.0, settle: float = 0.0) -> float:
        """After a Manager.Reset: wait (bounded) until the BMC has gone down and answers again.

        First polls (every ``settle`` seconds, at most a third of ``timeout``) until the BMC stops answering, so that a
        BMC still up for a moment after accepting the reset is not taken as "back"; then polls every ``interval``
        seconds until an authenticated GET of Managers/1 succeeds. Returns the seconds waited; raises
        RedfishUnavailableError at ``timeout``.
        """
        start = time.monotonic()
        deadline = start + timeout
        self._token = self._session_path = None  # a reset drops every session
        close = getattr(self.transport, "close", None)
        down_deadline = start + timeout / 3
        last = "no answer"
        seen_down = settle <= 0
        sleep = self.sleep or time.sleep
        while True:
            if close is not None:
                close()
            try:
                self.login()
                self._send("GET", MANAGER, None, retry=False)
                if seen_down:
                    return time.monotonic() - start
            except RedfishAuthError:
                raise
            except RedfishError as error:
                last = str(error)
                seen_down = True
            now = time.monotonic()
            if not seen_down and now + settle > down_deadline:
                seen_down = True  # never saw it go down: it reset faster than we polled
                continue
            wait = settle if not seen_down else interval
            if now + wait > deadline:
                raise RedfishUnavailableError(
                    f"BMC {self.display} did not come back within {timeout:.0f} s after its reset (last: {last})"
                )
            sleep(wait)


def _no_warn(message: str) -> None:
    import warnings  # noqa: PLC0415 - only outside Ansible

    warnings.warn(message, stacklevel=3)


def _key(path: str) -> str:
    return path.rstrip("/").lower()


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def split_address(address: str, port: int = 443) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or ``https://host:port`` as (host, port)."""
    text = address.strip()
    if "://" in text:
        parts = urlsplit(text)
        return parts.hostname or "", parts.port or port
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else port
    if text.count(":") == 1:
        host, _sep, number = text.partition(":")
        return host, int(number)
    return text, port


def client_from_params(
    params: Mapping[str, Any], warn: Callable[[str], None] | None = None, **kwargs: Any
) -> RedfishClient:
    """A client from a module's validated BMC options (see BMC_ARGUMENT_SPEC)."""
    return RedfishClient(
        address=params["address"],
        port=params["port"],
        username=params["username"],
        password=params["password"],
        ca_path=params.get("ca_path"),
        validate_certs=params.get("validate_certs", True),
        auth=params.get("auth", "basic"),
        timeout=params.get("timeout", 30.0),
        retries=params.get("retries", 5),
        warn=warn,
        **kwargs,
    )


def failure_reason(error: Exception) -> str:
    """A short machine-readable reason for a journal entry: wrong_credentials, unreachable, tls, bmc_identity or
    bmc_error."""
    if isinstance(error, RedfishIdentityError):
        return "bmc_identity"
    if isinstance(error, RedfishAuthError):
        return "wrong_credentials"
    if isinstance(error, RedfishUnavailableError):
        return "unreachable"
    if isinstance(error, RedfishTLSError):
        return "tls"
    return "bmc_error"


def redfish_failure(error: RedfishError) -> dict[str, Any]:
    """The result keys of a module that failed on one BMC: ``failure_reason``, ``message_ids``, ``retryable``."""
    reason = failure_reason(getattr(error, "cause", None) or error)
    return {"failure_reason": reason, "message_ids": error.message_ids, "retryable": reason == "unreachable"}


def on_bmcs(
    params: Mapping[str, Any],
    items: list[dict[str, Any]],
    work: Callable[[RedfishClient, dict[str, Any]], None],
    warn: Callable[[str], None],
) -> None:
    """``work(client, item)`` for the BMC of every active item, ``concurrency`` at once, each with its own client,
    deadline and retries. A BMC that fails (RedfishError) or cannot be addressed fails its item alone, with why.
    Before the work, the client checks that the BMC is the one NetBox knows (``facts.bmc_identity``, see
    :meth:`RedfishClient.identify`); what it learns on first contact goes to ``facts.bmc_identity_learned``.

    The work runs in threads (the step code is synchronous); the HTTP of every BMC goes through one
    :class:`RedfishBatch` (one event loop, one aiohttp session) for the whole step. Without aiohttp the step fails
    before any BMC, naming the package (RedfishError)."""
    todo = active(items)
    if not todo:
        return
    concurrency = int(params.get("concurrency") or DEFAULT_CONCURRENCY)
    warned: set[str] = set()
    lock = threading.Lock()

    def warn_once(message: str) -> None:
        with lock:
            if message not in warned:
                warned.add(message)
                warn(message)

    def one(item: dict[str, Any]) -> None:
        try:
            client = client_from_params(bmc_params_for(params, item), warn=warn_once, batch=batch)
        except ValueError as exc:
            fail(item, "no_bmc_address" if "address" in str(exc) else "no_credentials", str(exc))
            return
        item["facts"]["bmc_address"] = client.display
        try:
            with client:
                learned = client.identify(item["facts"].get("bmc_identity"))
                if learned:  # first contact: the stage's transition records it in NetBox
                    facts = item["facts"]
                    facts["bmc_identity"] = {**(facts.get("bmc_identity") or {}), **learned}
                    facts["bmc_identity_learned"] = {**(facts.get("bmc_identity_learned") or {}), **learned}
                work(client, item)
        except RedfishError as error:
            fail(item, failure_reason(getattr(error, "cause", None) or error), f"BMC {client.display}: {error}")
        finally:
            item["facts"]["bmc_requests"] = item["facts"].get("bmc_requests", 0) + client.requests

    with RedfishBatch(min(concurrency, len(todo))) as batch:
        batch.pool  # noqa: B018 - fails here, once, when aiohttp is missing
        concurrently(todo, one, concurrency)


# --- small typed resource views (sushy-like) -----------------------------------------------------------------------


class ComputerSystem:
    """The parts of ``Systems/1`` the stages use."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        boot = body.get("Boot") or {}
        actions = body.get("Actions") or {}
        reset = actions.get("#ComputerSystem.Reset") or {}
        self.raw = body
        self.power_state: str = body.get("PowerState") or "Unknown"
        self.model: str | None = body.get("Model")
        self.serial: str | None = body.get("SerialNumber")
        self.uuid: str | None = body.get("UUID")
        self.post_state: str | None = ((body.get("Oem") or {}).get("Hpe") or {}).get("PostState")
        self.boot_enabled: str = boot.get("BootSourceOverrideEnabled") or "Disabled"
        self.boot_target: str = boot.get("BootSourceOverrideTarget") or "None"
        self.boot_targets: list[str] | None = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
        self.reset_target: str = reset.get("target") or f"{SYSTEM}/Actions/ComputerSystem.Reset"
        self.reset_types: list[str] | None = reset.get("ResetType@Redfish.AllowableValues")
        self.processor_summary: Mapping[str, Any] = body.get("ProcessorSummary") or {}
        self.memory_summary: Mapping[str, Any] = body.get("MemorySummary") or {}
        links = body.get("Links") or {}
        self.chassis_paths: list[str] = [p for p in (_odata(c) for c in links.get("Chassis") or []) if p]

    def boot_override(self) -> dict[str, str]:
        """The current one-time/continuous override."""
        return {"BootSourceOverrideEnabled": self.boot_enabled, "BootSourceOverrideTarget": self.boot_target}


class Manager:
    """The parts of ``Managers/1`` the stages use."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        actions = body.get("Actions") or {}
        reset = actions.get("#Manager.Reset") or {}
        hpe = (body.get("Oem") or {}).get("Hpe") or {}
        self.raw = body
        self.firmware: str = body.get("FirmwareVersion") or ""
        self.reset_target: str = reset.get("target") or f"{MANAGER}/Actions/Manager.Reset"
        self.reset_types: list[str] | None = reset.get("ResetType@Redfish.AllowableValues")
        self.license: str | None = (hpe.get("License") or {}).get("LicenseString")
        links = hpe.get("Links") or {}
        self.snmp_path: str = _odata(links.get("SNMPService")) or f"{MANAGER}/SnmpService"
        self.license_path: str | None = _odata(links.get("LicenseService"))
        self.network_protocol_path: str = _odata(body.get("NetworkProtocol")) or f"{MANAGER}/NetworkProtocol"


class Chassis:
    """The parts of a ``Chassis`` member the metrics poller uses: the links to its power and thermal resources, the
    DMTF model (``PowerSubsystem``, ``ThermalSubsystem``, ``EnvironmentMetrics``) and the deprecated one (``Power``,
    ``Thermal``); None where the chassis links none."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.raw = body
        self.path: str | None = _odata(body)
        self.power_path = _odata(body.get("Power"))
        self.thermal_path = _odata(body.get("Thermal"))
        self.power_subsystem_path = _odata(body.get("PowerSubsystem"))
        self.thermal_subsystem_path = _odata(body.get("ThermalSubsystem"))
        self.environment_metrics_path = _odata(body.get("EnvironmentMetrics"))


def link(body: Mapping[str, Any] | None, name: str) -> str | None:
    """The path ``body[name]`` links (without a trailing slash), or None."""
    return _odata((body or {}).get(name))


def _odata(link: Any) -> str | None:
    """A link's path without the trailing slash a real iLO writes (``.../SnmpService/``), so paths can be joined."""
    if isinstance(link, Mapping) and isinstance(link.get("@odata.id"), str):
        return urlsplit(link["@odata.id"]).path.rstrip("/") or "/"
    return None


def members(collection: Mapping[str, Any]) -> list[str]:
    """The member paths of a collection."""
    return [p for p in (_odata(m) for m in collection.get("Members") or []) if p]
