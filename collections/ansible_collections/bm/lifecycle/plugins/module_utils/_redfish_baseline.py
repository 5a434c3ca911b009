# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iLO 5 hardening baseline behind ``bm.lifecycle.ilo_baseline``: read everything, diff, apply only what differs.

Flow: :func:`read_state` (GETs only) -> :func:`plan` (pure: the steps that make the BMC match the desired state) ->
:func:`apply` (one request per step; every answer carrying ``ResetRequired`` marks the BMC for a reset) -> at most one
``Manager.Reset`` -> wait (bounded) for the BMC -> :func:`read_state` again and :func:`plan` must be empty (verify).

Secrets (admin password, SNMPv3 passphrases, trap communities) never appear in a step's description, the diff or
the result. The admin password is write-only on iLO (``Password`` always reads ``null``): it is compared by logging in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    MANAGER,
    Manager,
    RedfishAuthError,
    RedfishClient,
    RedfishError,
    members,
)

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
ACCOUNT_SERVICE = "/redfish/v1/AccountService"
ONEVIEW_ACCOUNT = "_HPOneViewAdmin"
V1_FLAGS = ("SNMPv1RequestsEnabled", "SNMPv1TrapEnabled")  # iLO 5 2.90+

# The module's own options (the BMC connection options come from _redfish.BMC_ARGUMENT_SPEC).
BASELINE_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "admin_username": {"type": "str", "default": "Administrator"},
    "admin_password": {"type": "str", "no_log": True},
    "remove_accounts": {"type": "list", "elements": "str", "default": []},
    "snmpv3_users": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "auth_protocol": {"type": "str", "default": "SHA256", "choices": ["MD5", "SHA", "SHA256"]},
            "auth_passphrase": {"type": "str", "required": True, "no_log": True},
            "privacy_protocol": {"type": "str", "default": "AES", "choices": ["DES", "AES"]},
            "privacy_passphrase": {"type": "str", "required": True, "no_log": True},
            "engine_id": {"type": "str"},
        },
    },
    "update_passphrases": {"type": "bool", "default": False, "no_log": False},
    "snmpv1_enabled": {"type": "bool"},
    "snmp_alert_destinations": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "address": {"type": "str", "required": True},
            "protocol": {
                "type": "str",
                "default": "SNMPv3Trap",
                "choices": ["SNMPv1Trap", "SNMPv3Trap", "SNMPv3Inform"],
            },
            "security_name": {"type": "str"},
            "community": {"type": "str", "no_log": True},
        },
    },
    "ipmi_enabled": {"type": "bool"},
    "virtual_media_enabled": {"type": "bool"},
    "syslog_server": {"type": "str"},
    "syslog_port": {"type": "int", "default": 514},
    "min_password_length": {"type": "int", "no_log": False},
    "reset_timeout": {"type": "float", "default": 300.0},
    "reset_interval": {"type": "float", "default": 3.0},
}


class BaselineError(RedfishError):
    """The baseline cannot be applied as asked; ``step`` names where it stopped."""

    def __init__(self, message: str, step: str, cause: RedfishError | None = None) -> None:
        super().__init__(message, getattr(cause, "status", None), getattr(cause, "body", None))
        self.step = step
        self.cause = cause


@dataclass
class Step:
    """One write: what it changes (no secrets), and the request."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    reset_hint: bool = False  # iLO documents that this change needs a reset (the answer decides)


@dataclass
class State:
    """What the BMC has, as far as the baseline manages it (no secrets)."""

    firmware: str = ""
    license: str | None = None
    license_syslog: bool | None = None
    manager: Manager | None = None
    min_password_length: int | None = None
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # UserName -> {path, service}
    admin_password_ok: bool | None = None
    protocols: dict[str, Any] = field(default_factory=dict)
    syslog: dict[str, Any] = field(default_factory=dict)
    pending_reset: bool = False
    snmp: dict[str, Any] = field(default_factory=dict)
    snmp_path: str = f"{MANAGER}/SnmpService"
    snmp_users: dict[str, dict[str, Any]] = field(default_factory=dict)  # SecurityName -> public fields + path
    alerts: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def view(self) -> dict[str, Any]:
        """The diff view (no secrets)."""
        return {
            "admin_password": "verified"
            if self.admin_password_ok
            else "differs"
            if self.admin_password_ok is False
            else "not managed",
            "accounts": sorted(self.accounts),
            "min_password_length": self.min_password_length,
            "ipmi_enabled": (self.protocols.get("IPMI") or {}).get("ProtocolEnabled"),
            "virtual_media_enabled": (self.protocols.get("VirtualMedia") or {}).get("ProtocolEnabled"),
            "snmp_enabled": (self.protocols.get("SNMP") or {}).get("ProtocolEnabled"),
            "syslog": {
                "enabled": self.syslog.get("RemoteSyslogEnabled"),
                "server": self.syslog.get("RemoteSyslogServer"),
                "port": self.syslog.get("RemoteSyslogPort"),
            },
            "snmpv1": {k: self.snmp[k] for k in ("SNMPv1Enabled", *V1_FLAGS) if k in self.snmp},
            "snmp_read_communities_set": sum(1 for c in self.snmp.get("ReadCommunities") or [] if c),
            "snmpv3_users": {
                n: {k: u.get(k) for k in ("AuthProtocol", "PrivacyProtocol")}
                for n, u in sorted(self.snmp_users.items())
            },
            "alert_destinations": sorted(
                f"{a.get('AlertDestination')} {a.get('SNMPAlertProtocol')} {a.get('SecurityName') or ''}".strip()
                for a in self.alerts
            ),
            "pending_reset": self.pending_reset,
        }


def _hpe(body: Mapping[str, Any]) -> dict[str, Any]:
    return dict((body.get("Oem") or {}).get("Hpe") or {})


def _read_members(client: RedfishClient, path: str) -> list[tuple[str, dict[str, Any]]]:
    return [(m, client.get(m)) for m in members(client.get(path))]


def needs_snmp(params: Mapping[str, Any]) -> bool:
    """Whether the desired state needs the SNMP protocol on (SNMPv3 users or alert destinations)."""
    return bool(params.get("snmpv3_users") or params.get("snmp_alert_destinations"))


def read_state(client: RedfishClient, params: Mapping[str, Any]) -> State:
    """GET what the baseline manages (only the resources the desired state touches)."""
    state = State()
    manager = Manager(client.get(MANAGER))
    state.manager = manager
    state.firmware = manager.firmware
    state.license = manager.license
    state.snmp_path = manager.snmp_path
    if params.get("min_password_length") is not None:
        service = client.get(ACCOUNT_SERVICE)
        state.min_password_length = _hpe(service).get("MinPasswordLength", service.get("MinPasswordLength"))
    if params.get("admin_password") is not None or params.get("remove_accounts"):
        for path, body in _read_members(client, ACCOUNTS):
            name = body.get("UserName") or ""
            state.accounts[name] = {"path": path, "service": bool(_hpe(body).get("ServiceAccount"))}
    if params.get("admin_password") is not None:
        admin = params["admin_username"]
        if admin == client.username:
            state.admin_password_ok = client.password_is(params["admin_password"])
        else:
            state.admin_password_ok = client.check_credentials(admin, params["admin_password"])
    protocol = client.get(manager.network_protocol_path)
    state.protocols = {k: v for k, v in protocol.items() if isinstance(v, dict) and "ProtocolEnabled" in v}
    hpe = _hpe(protocol)
    state.syslog = {
        k: hpe.get(k) for k in ("RemoteSyslogEnabled", "RemoteSyslogServer", "RemoteSyslogPort") if k in hpe
    }
    state.pending_reset = hpe.get("ConfigurationSettings") == "SomePendingReset"
    if needs_snmp(params) or params.get("snmpv1_enabled") is not None:
        state.snmp = client.get(state.snmp_path)
        if needs_snmp(params):
            for path, body in _read_members(client, f"{state.snmp_path}/SNMPUsers"):
                state.snmp_users[body.get("SecurityName") or ""] = {**body, "path": path}
            for path, body in _read_members(client, f"{state.snmp_path}/SNMPAlertDestinations"):
                state.alerts.append({**body, "path": path})
    state.requests = client.requests
    return state


def _syslog_licensed(client: RedfishClient, state: State) -> bool | None:
    """Whether the licence includes RemoteSyslog (None when the BMC does not say)."""
    path = state.manager.license_path if state.manager else None
    if not path:
        return None
    try:
        for _member, body in _read_members(client, path):
            features = body.get("LicenseFeatures") or {}
            if "RemoteSyslog" in features:
                return bool(features["RemoteSyslog"])
    except RedfishError:
        return None
    return None


def licence_error(state: State) -> BaselineError:
    """The clear error of a BMC without the RemoteSyslog licence feature."""
    return BaselineError(
        f"remote syslog needs the iLO licence feature 'RemoteSyslog' (iLO Advanced); this BMC has "
        f"{state.license or 'an unknown licence'}. Install an iLO Advanced licence or drop syslog_server.",
        "syslog",
    )


def plan(state: State, params: Mapping[str, Any], client_username: str) -> list[Step]:  # noqa: PLR0912, PLR0915
    """The writes that make the BMC match ``params`` (pure; raises BaselineError for a request it must refuse)."""
    steps: list[Step] = []
    # 1. password policy first: a new admin password must already meet it
    length = params.get("min_password_length")
    if length is not None and state.min_password_length != length:
        steps.append(
            Step("min_password_length", "PATCH", ACCOUNT_SERVICE, {"Oem": {"Hpe": {"MinPasswordLength": length}}})
        )
    # 2. admin password (write-only)
    admin = params.get("admin_username") or "Administrator"
    if params.get("admin_password") is not None and not state.admin_password_ok:
        account = state.accounts.get(admin)
        if account is None:
            raise BaselineError(f"admin account {admin!r} does not exist on the BMC", "admin_password")
        steps.append(Step("admin_password", "PATCH", account["path"], {"Password": params["admin_password"]}))
    # 3. accounts to remove: never the one in use, never a service or OneView account
    for name in params.get("remove_accounts") or []:
        if name in (client_username, admin):
            raise BaselineError(
                f"refusing to remove account {name!r}: it is the account in use or the admin", "accounts"
            )
        account = state.accounts.get(name)
        if account is None:
            continue
        if account["service"] or name == ONEVIEW_ACCOUNT:
            raise BaselineError(f"refusing to remove account {name!r}: it is a service (OneView) account", "accounts")
        steps.append(Step(f"remove_account {name}", "DELETE", account["path"]))
    # 4. network protocols and syslog: one PATCH
    net: dict[str, Any] = {}
    names: list[str] = []

    def protocol(key: str, wanted: bool | None, label: str) -> None:
        if wanted is not None and (state.protocols.get(key) or {}).get("ProtocolEnabled") != wanted:
            net[key] = {"ProtocolEnabled": wanted}
            names.append(label)

    protocol("SNMP", True if needs_snmp(params) else None, "snmp_enabled")
    protocol("IPMI", params.get("ipmi_enabled"), "ipmi_enabled")
    protocol("VirtualMedia", params.get("virtual_media_enabled"), "virtual_media_enabled")
    server = params.get("syslog_server")
    if server is not None:
        wanted_syslog = (
            {
                "RemoteSyslogServer": server,
                "RemoteSyslogPort": params.get("syslog_port") or 514,
                "RemoteSyslogEnabled": True,
            }
            if server
            else {"RemoteSyslogEnabled": False}
        )
        if any(state.syslog.get(k) != v for k, v in wanted_syslog.items()):
            if server and state.license_syslog is False:
                raise licence_error(state)
            net["Oem"] = {"Hpe": wanted_syslog}
            names.append("syslog")
    if net:
        steps.append(Step(" ".join(names), "PATCH", "NETWORK_PROTOCOL", net, reset_hint="SNMP" in net))
    snmp_on = needs_snmp(params) or bool((state.protocols.get("SNMP") or {}).get("ProtocolEnabled"))
    # 5. SNMPv3 users (passphrases are write-only: sent on create, or always with update_passphrases)
    for user in params.get("snmpv3_users") or []:
        body: dict[str, Any] = {
            "SecurityName": user["name"],
            "AuthProtocol": user["auth_protocol"],
            "AuthPassphrase": user["auth_passphrase"],
            "PrivacyProtocol": user["privacy_protocol"],
            "PrivacyPassphrase": user["privacy_passphrase"],
        }
        if user.get("engine_id"):
            body["UserEngineID"] = user["engine_id"]
        current = state.snmp_users.get(user["name"])
        if current is None:
            steps.append(Step(f"snmpv3_user {user['name']}", "POST", f"{state.snmp_path}/SNMPUsers", body))
            continue
        differs = (
            current.get("AuthProtocol") != user["auth_protocol"]
            or current.get("PrivacyProtocol") != user["privacy_protocol"]
        )
        if user.get("engine_id") and (current.get("UserEngineID") or "").lower() != user["engine_id"].lower():
            differs = True
        if differs or params.get("update_passphrases"):
            steps.append(Step(f"snmpv3_user {user['name']}", "PATCH", current["path"], body))
    # 6. alert destinations (matched by address)
    for dest in params.get("snmp_alert_destinations") or []:
        wanted = {"AlertDestination": dest["address"], "SNMPAlertProtocol": dest["protocol"]}
        if dest["protocol"] != "SNMPv1Trap":
            name = dest.get("security_name") or (params.get("snmpv3_users") or [{}])[0].get("name")
            if not name:
                raise BaselineError(
                    f"alert destination {dest['address']} needs security_name (an SNMPv3 user)", "alerts"
                )
            wanted["SecurityName"] = name
        elif dest.get("community"):
            wanted["TrapCommunity"] = dest["community"]
        current_alert = next((a for a in state.alerts if a.get("AlertDestination") == dest["address"]), None)
        if current_alert is None:
            steps.append(
                Step(f"alert_destination {dest['address']}", "POST", f"{state.snmp_path}/SNMPAlertDestinations", wanted)
            )
        elif any(current_alert.get(k) != v for k, v in wanted.items() if k != "TrapCommunity"):
            steps.append(Step(f"alert_destination {dest['address']}", "PATCH", current_alert["path"], wanted))
    # 7. SNMPv1 (and, when it is off, no v1 communities)
    v1 = params.get("snmpv1_enabled")
    if v1 is not None and snmp_on and state.snmp:
        snmp_body: dict[str, Any] = {}
        for key in ("SNMPv1Enabled", *V1_FLAGS):
            if key in state.snmp and state.snmp[key] != v1:
                snmp_body[key] = v1
        if not v1:
            read = state.snmp.get("ReadCommunities")
            if isinstance(read, list) and any(read):
                snmp_body["ReadCommunities"] = [""] * len(read)
            trap = state.snmp.get("TrapCommunities")
            if isinstance(trap, list) and any(trap):
                snmp_body["TrapCommunities"] = [""] * len(trap)
        if snmp_body:
            steps.append(Step("snmpv1", "PATCH", state.snmp_path, snmp_body, reset_hint="SNMPv1Enabled" in snmp_body))
    return steps


def describe(steps: list[Step]) -> list[str]:
    """Step names (no secrets)."""
    return [s.name for s in steps]


def apply(client: RedfishClient, state: State, steps: list[Step], params: Mapping[str, Any]) -> bool:
    """Carry out ``steps`` in order; returns whether a Manager.Reset is needed. Raises BaselineError naming the step."""
    reset = state.pending_reset
    protocol_path = state.manager.network_protocol_path if state.manager else f"{MANAGER}/NetworkProtocol"
    for step in steps:
        path = protocol_path if step.path == "NETWORK_PROTOCOL" else step.path
        try:
            if step.method == "PATCH":
                answer = client.patch(path, step.body or {})
            elif step.method == "POST":
                answer = client.post(path, step.body or {})
            else:
                answer = client.delete(path)
        except RedfishError as error:
            if error.has("LicenseKeyRequired"):
                raise licence_error(state) from None
            raise BaselineError(f"step '{step.name}' failed: {error}", step.name, error) from None
        if answer.has("ResetRequired"):
            reset = True
        if step.name == "admin_password" and params.get("admin_username") == client.username:
            client.set_password(params["admin_password"])  # we changed our own password: log in with the new one
    return reset


def manager_reset(client: RedfishClient, state: State) -> str:
    """POST the one Manager.Reset; returns the ResetType used."""
    manager = state.manager or Manager({})
    allowed = manager.reset_types or ["GracefulRestart", "ForceRestart"]
    reset_type = "GracefulRestart" if "GracefulRestart" in allowed else "ForceRestart"
    try:
        client.post(manager.reset_target, {"ResetType": reset_type})
    except RedfishError as error:
        raise BaselineError(f"step 'manager_reset' failed: {error}", "manager_reset", error) from None
    return reset_type


def run(
    client: RedfishClient,
    params: Mapping[str, Any],
    *,
    check_mode: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The whole module: read, diff, (apply, one reset, wait, verify). Returns the module result."""
    step = "read"
    try:
        state = _read_connecting(client, params)
        steps = plan(state, params, client.username)
        if params.get("syslog_server") and any(
            s.body and "Oem" in s.body for s in steps if s.path == "NETWORK_PROTOCOL"
        ):
            step = "syslog"
            state.license_syslog = _syslog_licensed(client, state)
            if state.license_syslog is False:
                raise licence_error(state)
    except BaselineError:
        raise
    except RedfishError as error:
        raise BaselineError(f"step '{step}' failed: {error}", step, error) from None
    before = state.view()
    reset_needed_now = state.pending_reset or any(s.reset_hint for s in steps)
    result: dict[str, Any] = {
        "changed": bool(steps) or state.pending_reset,
        "changes": describe(steps),
        "firmware": state.firmware,
        "reset_required": reset_needed_now,
        "reset_performed": False,
        "reset_wait_seconds": None,
        "password_changed": any(s.name == "admin_password" for s in steps),
    }
    if check_mode or not result["changed"]:
        result["diff"] = {"before": before, "after": _predict(before, steps, params)}
        result["bmc_requests"] = client.requests
        return result
    reset = apply(client, state, steps, params)
    if reset:
        result["reset_type"] = manager_reset(client, state)
        result["reset_performed"] = True
        try:
            result["reset_wait_seconds"] = round(
                client.wait_until_ready(
                    params.get("reset_timeout", 300.0), interval=params.get("reset_interval", 3.0), settle=0.5
                ),
                1,
            )
        except RedfishError as error:
            raise BaselineError(f"step 'wait_for_reset' failed: {error}", "wait_for_reset", error) from None
    # verify through a fresh read: nothing may be left to do
    try:
        after_state = read_state(client, params)
        after_state.license_syslog = state.license_syslog
        left = plan(after_state, params, client.username)
    except RedfishError as error:
        raise BaselineError(f"step 'verify' failed: {error}", "verify", error) from None
    if left or after_state.pending_reset:
        raise BaselineError(
            "step 'verify' failed: still differing after apply: " + ", ".join(describe(left) or ["pending reset"]),
            "verify",
        )
    result["diff"] = {"before": before, "after": after_state.view()}
    result["bmc_requests"] = client.requests
    return result


def _read_connecting(client: RedfishClient, params: Mapping[str, Any]) -> State:
    """read_state; if the connecting admin's password was already changed to the desired one, log in with that."""
    try:
        return read_state(client, params)
    except RedfishAuthError:
        desired = params.get("admin_password")
        if desired is None or params.get("admin_username") != client.username or client.password_is(desired):
            raise
        client.set_password(desired)
        return read_state(client, params)


def _predict(before: dict[str, Any], steps: list[Step], params: Mapping[str, Any]) -> dict[str, Any]:  # noqa: PLR0912
    """The diff's ``after`` in check mode (and when nothing changes)."""
    after: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in before.items()
    }
    for step in steps:
        if step.name == "admin_password":
            after["admin_password"] = "verified"  # noqa: S105 - a status word
        elif step.name.startswith("remove_account "):
            after["accounts"] = [a for a in after["accounts"] if a != step.name.split(" ", 1)[1]]
        elif step.name == "min_password_length":
            after["min_password_length"] = params["min_password_length"]
        elif step.path == "NETWORK_PROTOCOL":
            body = step.body or {}
            for key, label in (
                ("SNMP", "snmp_enabled"),
                ("IPMI", "ipmi_enabled"),
                ("VirtualMedia", "virtual_media_enabled"),
            ):
                if key in body:
                    after[label] = body[key]["ProtocolEnabled"]
            syslog = (body.get("Oem") or {}).get("Hpe")
            if syslog:
                after["syslog"] = {
                    "enabled": syslog.get("RemoteSyslogEnabled"),
                    "server": syslog.get("RemoteSyslogServer", after["syslog"].get("server")),
                    "port": syslog.get("RemoteSyslogPort", after["syslog"].get("port")),
                }
        elif step.name.startswith("snmpv3_user "):
            body = step.body or {}
            after["snmpv3_users"][body["SecurityName"]] = {
                "AuthProtocol": body["AuthProtocol"],
                "PrivacyProtocol": body["PrivacyProtocol"],
            }
        elif step.name.startswith("alert_destination "):
            body = step.body or {}
            entry = f"{body['AlertDestination']} {body['SNMPAlertProtocol']} {body.get('SecurityName') or ''}".strip()
            after["alert_destinations"] = sorted({*after["alert_destinations"], entry})
        elif step.name == "snmpv1":
            body = step.body or {}
            after["snmpv1"] = {**after["snmpv1"], **{k: v for k, v in body.items() if k.startswith("SNMPv1")}}
            if "ReadCommunities" in body:
                after["snmp_read_communities_set"] = 0
    if any(s.reset_hint for s in steps) or before.get("pending_reset"):
        after["pending_reset"] = False
    return after
