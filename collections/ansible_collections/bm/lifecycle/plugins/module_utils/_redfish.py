# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small typed Redfish client for HPE iLO 5, and the BMC connection options every Redfish module shares.

Standard library only (``http.client`` + ``ssl``): modules run under whatever Python the controller gives them.

What it does for every caller:
- TLS verification is an explicit choice: ``ca_path`` (a CA bundle file or directory, per site or per BMC) or
  ``validate_certs: false``, which warns on every use. Never a silent ``verify=False``.
- Bounded exponential backoff (with jitter, honouring ``Retry-After``) on HTTP 503, on the busy MessageIds
  (``ServiceTemporarilyUnavailable``, ``ResourceTemporarilyUnavailable``, ``DeviceIsBusy``), on connection errors and
  timeouts. A POST is retried after a connection error only when the request never left (connect failed): a reset
  must not run twice.
- No retry on 401: :class:`RedfishAuthError` says "wrong credentials".
- PATCH sends ``If-Match`` with the ETag of the last GET of that resource (iLO accepts weak tags); a 412 refreshes the
  ETag once.
- MessageIds are compared by suffix (``Base.1.4.Success`` and ``Base.1.18.Success`` are the same message).
- Errors carry the ``@Message.ExtendedInfo`` MessageIds and arguments.
- ``auth: basic`` (default; nothing to leak) or ``auth: session``: the session is always deleted on close.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import DEFAULT_CONCURRENCY, active, concurrently, fail

BMC_USERNAME_ENV = "BM_BMC_USERNAME"
BMC_PASSWORD_ENV = "BM_BMC_PASSWORD"  # noqa: S105 - the name of an environment variable, not a password
BMC_CA_PATH_ENV = "BM_BMC_CA_PATH"
BMC_VALIDATE_CERTS_ENV = "BM_BMC_VALIDATE_CERTS"

BUSY_MESSAGES = ("ServiceTemporarilyUnavailable", "ResourceTemporarilyUnavailable", "DeviceIsBusy")
SYSTEM = "/redfish/v1/Systems/1"
MANAGER = "/redfish/v1/Managers/1"
ROOT = "/redfish/v1/"
SESSIONS = "/redfish/v1/SessionService/Sessions"

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
    """The BMC could not be reached, or stayed busy, through every retry."""


class RedfishTLSError(RedfishError):
    """The BMC's certificate failed verification (never retried)."""


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


# A transport takes (method, path, headers, body bytes or None, timeout) and returns (status, headers, body bytes).
# It raises NotSent when the request never left, OSError/http.client.HTTPException when it may have.
class Transport(Protocol):
    """Sends one request: (method, path, headers, body, timeout) -> (status, headers, body)."""

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        """Send; raise NotSent if the request never left."""


def ssl_context(ca_path: str | None, validate_certs: bool) -> ssl.SSLContext:
    """The TLS context of an explicit choice: the CA at ``ca_path``, the system CAs, or no verification."""
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_path:
        import os  # noqa: PLC0415 - only here

        if os.path.isdir(ca_path):
            return ssl.create_default_context(capath=ca_path)
        return ssl.create_default_context(cafile=ca_path)
    return ssl.create_default_context()


class HTTPSTransport:
    """One keep-alive HTTPS connection to a BMC, reopened after any error."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, scheme: str = "https") -> None:
        self.host = host
        self.port = port
        self.context = context
        self.scheme = scheme
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "http":
                conn: http.client.HTTPConnection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            else:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
            try:
                conn.connect()
            except ssl.SSLCertVerificationError:
                conn.close()
                raise
            except OSError as error:
                conn.close()
                raise NotSent(str(error)) from error
            self._conn = conn
        self._conn.timeout = timeout
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._conn

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self._connect(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            self.close()
            raise
        if answer.getheader("Connection", "").lower() == "close":
            self.close()
        return answer.status, dict(answer.getheaders()), data

    def close(self) -> None:
        """Close the connection (reopened on the next request)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- client -------------------------------------------------------------------------------------------------------


class RedfishClient:
    """A Redfish service on one BMC. Use as a context manager so that a session is always deleted."""

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
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        host, port = split_address(address, port)
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.auth = auth
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.etags: dict[str, str] = {}
        self.requests = 0
        self.retried = 0
        self._token: str | None = None
        self._session_path: str | None = None
        if not validate_certs:
            message = (
                f"TLS certificate verification is disabled for BMC {host}:{port} (validate_certs=false); "
                "set ca_path to the BMC's CA bundle instead"
            )
            (warn or _no_warn)(message)
        self.transport: Transport = transport or HTTPSTransport(host, port, ssl_context(ca_path, validate_certs))

    @property
    def display(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def __enter__(self) -> RedfishClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_password(self, password: str) -> None:
        """Use a new password from now on (after changing the connecting account's password)."""
        self._password = password

    def password_is(self, password: str) -> bool:
        """Whether ``password`` is the one this client logs in with (constant-time compare)."""
        return hmac.compare_digest(self._password.encode(), password.encode())

    # sessions
    def login(self) -> None:
        """Open a session (``auth: session``); Basic auth needs none."""
        if self.auth != "session" or self._token:
            return
        body = {"UserName": self.username, "Password": self._password}
        answer = self._send("POST", SESSIONS, body, authenticate=False)
        token = answer.headers.get("x-auth-token")
        if answer.status not in (200, 201) or not token:
            raise RedfishError(
                f"BMC {self.display} did not open a session (HTTP {answer.status})",
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
        path, self._session_path = self._session_path, None
        if self._token and path:
            with contextlib.suppress(RedfishError):
                self._send("DELETE", path, None, retry=False)
        self._token = None

    def close(self) -> None:
        """Delete the session and close the connection."""
        try:
            self.logout()
        finally:
            close = getattr(self.transport, "close", None)
            if close is not None:
                close()

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
        answer = self.request("GET", path)
        etag = answer.headers.get("etag") or (answer.body or {}).get("@odata.etag")
        if etag:
            self.etags[_key(path)] = etag
        return answer.body if isinstance(answer.body, dict) else {}

    def patch(self, path: str, body: Mapping[str, Any]) -> Response:
        """PATCH with If-Match from the last GET; a 412 refreshes the ETag once."""
        try:
            return self.request("PATCH", path, body, headers=self._if_match(path))
        except RedfishError as error:
            if error.status != 412:
                raise
            self.get(path)
            return self.request("PATCH", path, body, headers=self._if_match(path))

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
        self.login()
        try:
            return self._send(method, path, body, headers=headers)
        except RedfishAuthError:
            if self.auth != "session" or not self._token:
                raise
            self._token = self._session_path = None  # the session ended (BMC reset, idle timeout): log in again
            self.login()
            return self._send(method, path, body, headers=headers)

    def _send(  # noqa: PLR0912 - one place for the whole retry policy
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        headers: dict[str, str] | None = None,
        authenticate: bool = True,
        retry: bool = True,
    ) -> Response:
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
        attempts = self.retries + 1 if retry else 1
        last: Exception | None = None
        for attempt in range(attempts):
            delay: float | None = None
            try:
                self.requests += 1
                status, answer_headers, raw = self.transport(method, path, all_headers, data, self.timeout)
            except ssl.SSLCertVerificationError as error:
                raise RedfishTLSError(
                    f"TLS certificate of BMC {self.display} failed verification ({error.verify_message}); "
                    "give its CA with ca_path",
                    method=method,
                    path=path,
                ) from None
            except NotSent as error:
                last = error
            except (OSError, http.client.HTTPException) as error:
                last = error
                if method == "POST":
                    # the request may have been carried out: never run an action twice
                    raise RedfishUnavailableError(
                        f"BMC {self.display}: connection lost during {method} {path} ({error!r}); not retried",
                        method=method,
                        path=path,
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
            self.sleep(wait * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter, not cryptography
        raise RedfishUnavailableError(
            f"BMC {self.display}: {method} {path} still failing after {attempts} attempt(s): {last}",
            getattr(last, "status", None),
            getattr(last, "body", None),
            method,
            path,
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
            self.sleep(wait)


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
    """A short machine-readable reason for a journal entry: wrong_credentials, unreachable, tls or bmc_error."""
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
    deadline and retries. A BMC that fails (RedfishError) or cannot be addressed fails its item alone, with why."""
    warned: set[str] = set()
    lock = threading.Lock()

    def warn_once(message: str) -> None:
        with lock:
            if message not in warned:
                warned.add(message)
                warn(message)

    def one(item: dict[str, Any]) -> None:
        try:
            client = client_from_params(bmc_params_for(params, item), warn=warn_once)
        except ValueError as exc:
            fail(item, "no_bmc_address" if "address" in str(exc) else "no_credentials", str(exc))
            return
        item["facts"]["bmc_address"] = client.display
        try:
            with client:
                work(client, item)
        except RedfishError as error:
            fail(item, failure_reason(getattr(error, "cause", None) or error), f"BMC {client.display}: {error}")
        finally:
            item["facts"]["bmc_requests"] = item["facts"].get("bmc_requests", 0) + client.requests

    concurrently(active(items), one, int(params.get("concurrency") or DEFAULT_CONCURRENCY))


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


def _odata(link: Any) -> str | None:
    """A link's path without the trailing slash a real iLO writes (``.../SnmpService/``), so paths can be joined."""
    if isinstance(link, Mapping) and isinstance(link.get("@odata.id"), str):
        return urlsplit(link["@odata.id"]).path.rstrip("/") or "/"
    return None


def members(collection: Mapping[str, Any]) -> list[str]:
    """The member paths of a collection."""
    return [p for p in (_odata(m) for m in collection.get("Members") or []) if p]
