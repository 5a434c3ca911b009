"""The iLO Redfish resources: JSON rendering of a :class:`Bmc` and the handlers that change it.

Paths are written here without a trailing slash; the server adds one to every link it answers, as an iLO does.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import payload
from .bmc import BOOT_TARGETS, PRIVILEGES, ROLE_PRIVILEGES, Account, Bmc, Session
from .messages import BASE, ILO, RedfishError, success
from .payload import Field, Spec

V1 = "/redfish/v1"
type Json = dict[str, Any]


@dataclass
class Ctx:
    """One request as the handlers see it."""

    bmc: Bmc
    params: tuple[str, ...]
    body: Json
    principal: Session | Account | None
    base_url: str

    @property
    def account(self) -> Account | None:
        """The account behind the request, if authenticated."""
        return self.principal.account if isinstance(self.principal, Session) else self.principal


@dataclass
class Reply:
    """A handler's answer."""

    body: Json
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


type Getter = Callable[[Ctx], Json]
type Writer = Callable[[Ctx], Awaitable[Reply]]


@dataclass(frozen=True)
class Resource:
    """A URI pattern (lower case, no trailing slash) and its methods; writes need ``privilege``."""

    pattern: re.Pattern[str]
    get: Getter | None = None
    patch: Writer | None = None
    post: Writer | None = None
    delete: Writer | None = None
    privilege: str = "iLOConfigPriv"

    @property
    def allow(self) -> str:
        """The Allow header."""
        methods = [("GET, HEAD", self.get), ("POST", self.post), ("PATCH", self.patch), ("DELETE", self.delete)]
        return ", ".join(name for name, handler in methods if handler is not None)


def link(path: str) -> Json:
    """A Redfish reference."""
    return {"@odata.id": path}


def collection(path: str, odata_type: str, name: str, members: list[str]) -> Json:
    """A resource collection."""
    return {
        "@odata.id": path,
        "@odata.type": f"#{odata_type}.{odata_type}",
        "Name": name,
        "Members": [link(m) for m in members],
        "Members@odata.count": len(members),
    }


def resource(path: str, odata_type: str, ident: str, name: str, **props: Any) -> Json:
    """A singular resource."""
    return {"@odata.id": path, "@odata.type": f"#{odata_type}", "Id": ident, "Name": name, **props}


OK = {"State": "Enabled", "Health": "OK"}
OK_ROLLUP = {"HealthRollup": "OK"}
FAILED = {"State": "Enabled", "Health": "Critical"}


def rollup(bmc: Bmc) -> str:
    """The health a failed fan or power supply (``/_mock/faults``) rolls up to: redundant parts, so a Warning."""
    return "Warning" if bmc.faults.failed_fans or bmc.faults.failed_psus else "OK"


def _check_write(ctx: Ctx, privilege: str) -> None:
    account = ctx.account
    if account is not None and privilege not in account.privileges:
        raise RedfishError(403, f"{BASE}.InsufficientPrivilege")


def _wave(bmc: Bmc, period: float, phase: int = 0) -> float:
    """A slow deterministic wobble in [-1, 1] so that readings move over time."""
    return math.sin(time.time() / period + bmc.identity.index + phase)


# --- service root and sessions ------------------------------------------------------------------------------------


def service_root(ctx: Ctx) -> Json:
    """GET /redfish/v1 (no authentication)."""
    bmc = ctx.bmc
    profile = bmc.profile
    return {
        "@odata.context": f"{V1}/$metadata#ServiceRoot.ServiceRoot",
        **resource(f"{V1}", profile.odata_type("ServiceRoot"), "RootService", "HPE RESTful Root Service"),
        "RedfishVersion": profile.redfish_version,
        "UUID": bmc.identity.uuid,
        "Vendor": "HPE",
        "Product": profile.product,
        "Links": {"Sessions": link(f"{V1}/SessionService/Sessions")},
        "SessionService": link(f"{V1}/SessionService"),
        "AccountService": link(f"{V1}/AccountService"),
        "Systems": link(f"{V1}/Systems"),
        "Chassis": link(f"{V1}/Chassis"),
        "Managers": link(f"{V1}/Managers"),
        "JsonSchemas": link(f"{V1}/JsonSchemas"),
        "Registries": link(f"{V1}/Registries"),
        "Oem": {
            "Hpe": {
                "@odata.type": "#HpeiLOServiceExt.v2_3_0.HpeiLOServiceExt",
                "Manager": [
                    {
                        "ManagerType": profile.manager,
                        "ManagerFirmwareVersion": bmc.settings.firmware,
                        "HostName": f"ILO{bmc.identity.serial}",
                    }
                ],
                "Moniker": {"PRODGEN": profile.manager, "PRODNAM": profile.product_name, "VENDNAM": "HPE"},
                "Sessions": {"LoginHint": {"Hint": "POST to /Sessions to login using the following JSON object:"}},
                "System": [{"Status": OK}],
            }
        },
    }


def session_service(ctx: Ctx) -> Json:
    """GET SessionService (SessionTimeout only from firmware 2.90)."""
    body = resource(
        f"{V1}/SessionService",
        "SessionService.v1_0_0.SessionService",
        "SessionService",
        "Session Service",
        ServiceEnabled=True,
        Status=OK,
        Sessions=link(f"{V1}/SessionService/Sessions"),
    )
    if ctx.bmc.at_least((2, 90)):
        body["SessionTimeout"] = int(ctx.bmc.settings.session_timeout)
    return body


async def patch_session_service(ctx: Ctx) -> Reply:
    """PATCH SessionService: SessionTimeout (30 s .. 24 h) on firmware 2.90 and later."""
    spec: Spec = {}
    if ctx.bmc.at_least((2, 90)):
        spec = {"SessionTimeout": Field(int, check=payload.between(30, 86400))}
    payload.check(ctx.body, spec)
    if "SessionTimeout" in ctx.body:
        ctx.bmc.settings.session_timeout = float(ctx.body["SessionTimeout"])
    return Reply(success())


def sessions(ctx: Ctx) -> Json:
    """GET the Sessions collection."""
    ids = [f"{V1}/SessionService/Sessions/{s.id}" for s in ctx.bmc.sessions.values()]
    return collection(f"{V1}/SessionService/Sessions", "SessionCollection", "Sessions", ids)


async def create_session(ctx: Ctx) -> Reply:
    """POST Sessions: 201, X-Auth-Token and an absolute Location, as iLO answers."""
    payload.check(ctx.body, {"UserName": Field(str), "Password": Field(str)})
    payload.require(ctx.body, "UserName", "Password")
    session = ctx.bmc.open_session(ctx.body["UserName"], ctx.body["Password"])
    path = f"{V1}/SessionService/Sessions/{session.id}/"
    body = _session_body(ctx.bmc, session, mine=True)
    headers = {"X-Auth-Token": session.token, "Location": ctx.base_url + path, "Link": f"<{path}>; rel=self"}
    return Reply(body, 201, headers)


def _find_session(ctx: Ctx) -> Session:
    session = ctx.bmc.find_session(ctx.params[0])
    if session is None:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/SessionService/Sessions/{ctx.params[0]}")
    return session


def _session_body(bmc: Bmc, session: Session, mine: bool) -> Json:
    wall = time.time() - time.monotonic()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall + session.created))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall + session.last_used + bmc.settings.session_timeout))
    return resource(
        f"{V1}/SessionService/Sessions/{session.id}",
        "Session.v1_0_0.Session",
        session.id,
        "User Session",
        UserName=session.account.username,
        Oem={
            "Hpe": {
                "@odata.type": "#HpeiLOSession.v2_1_0.HpeiLOSession",
                "AccessTime": stamp,
                "LoginTime": stamp,
                "MySession": mine,
                "Privileges": {p: p in session.account.privileges for p in PRIVILEGES},
                "UserAccount": session.account.username,
                "UserExpires": expires,
                "UserIP": "127.0.0.1",
                "UserTag": "REST",
                "UserType": "Local",
            }
        },
    )


def get_session(ctx: Ctx) -> Json:
    """GET one session."""
    session = _find_session(ctx)
    return _session_body(ctx.bmc, session, mine=ctx.principal is session)


async def delete_session(ctx: Ctx) -> Reply:
    """DELETE a session (log out); one's own session needs no privilege."""
    session = _find_session(ctx)
    if ctx.principal is not session:
        _check_write(ctx, "UserConfigPriv")
    del ctx.bmc.sessions[session.token]
    return Reply(success())


# --- accounts -----------------------------------------------------------------------------------------------------

PRIVILEGE_SPEC: Spec = {name: Field(bool) for name in PRIVILEGES}
ROLE = Field(str, enum=tuple(ROLE_PRIVILEGES))
ACCOUNT_SPEC: Spec = {
    "UserName": Field(str, check=payload.between(1, 39)),
    "Password": Field(str),
    "RoleId": ROLE,
    "Oem": {"Hpe": {"LoginName": Field(str), "Privileges": PRIVILEGE_SPEC}},
}


def _account_spec(bmc: Bmc) -> Spec:
    """What an account PATCH or POST may carry: iLO 6 from 1.53 also ``Enabled``."""
    return {**ACCOUNT_SPEC, "Enabled": Field(bool)} if bmc.at_least((99, 0), (1, 53)) else ACCOUNT_SPEC


def account_service(ctx: Ctx) -> Json:
    """GET AccountService."""
    bmc = ctx.bmc
    policy = bmc.account_policy
    return resource(
        f"{V1}/AccountService",
        bmc.profile.odata_type("AccountService"),
        "AccountService",
        "Account Service",
        Description="iLO User Accounts",
        ServiceEnabled=True,
        MinPasswordLength=bmc.min_password_length,
        MaxPasswordLength=39,
        LocalAccountAuth="Enabled",
        AuthFailureLoggingThreshold=policy["AuthFailureLoggingThreshold"],
        Status=OK,
        Accounts=link(f"{V1}/AccountService/Accounts"),
        Roles=link(f"{V1}/AccountService/Roles"),
        Oem={
            "Hpe": {
                "@odata.type": "#HpeiLOAccountService.v2_3_0.HpeiLOAccountService",
                "MinPasswordLength": bmc.min_password_length,
                "DefaultUserName": None,
                "DefaultPassword": None,
                **policy,
            }
        },
    )


async def patch_account_service(ctx: Ctx) -> Reply:
    """PATCH AccountService: password policy and login throttling."""
    payload.check(
        ctx.body,
        {
            "MinPasswordLength": Field(int, check=payload.between(0, 39)),
            "AuthFailureLoggingThreshold": Field(int, check=payload.one_of(0, 1, 2, 3, 5)),
            "Oem": {
                "Hpe": {
                    "MinPasswordLength": Field(int, check=payload.between(0, 39)),
                    "EnforcePasswordComplexity": Field(bool),
                    "AuthFailuresBeforeDelay": Field(int, check=payload.one_of(0, 1, 3, 5)),
                    "AuthFailureDelayTimeSeconds": Field(int, check=payload.one_of(2, 5, 10, 30)),
                    "AuthFailureLoggingThreshold": Field(int, check=payload.one_of(0, 1, 2, 3, 5)),
                }
            },
        },
    )
    hpe = ctx.body.get("Oem", {}).get("Hpe", {})
    for source in (ctx.body, hpe):
        if "MinPasswordLength" in source:
            ctx.bmc.min_password_length = source["MinPasswordLength"]
    ctx.bmc.account_policy.update({k: v for k, v in hpe.items() if k != "MinPasswordLength"})
    if "AuthFailureLoggingThreshold" in ctx.body:
        ctx.bmc.account_policy["AuthFailureLoggingThreshold"] = ctx.body["AuthFailureLoggingThreshold"]
    return Reply(success())


def accounts(ctx: Ctx) -> Json:
    """GET the Accounts collection."""
    ids = [f"{V1}/AccountService/Accounts/{n}" for n in sorted(ctx.bmc.accounts)]
    return collection(f"{V1}/AccountService/Accounts", "ManagerAccountCollection", "Accounts", ids)


def _account_body(bmc: Bmc, account: Account) -> Json:
    extra: Json = {}
    if bmc.ilo6:  # iLO 6: PasswordChangeRequired (1.05), Enabled (1.53), AccountTypes (1.63)
        extra["PasswordChangeRequired"] = False
        if bmc.at_least((99, 0), (1, 53)):
            extra["Enabled"] = account.enabled
        if bmc.at_least((99, 0), (1, 63)):
            extra["AccountTypes"] = ["Redfish", "WebUI", "HostConsole", "ManagerConsole"]
    return resource(
        f"{V1}/AccountService/Accounts/{account.id}",
        bmc.profile.odata_type("ManagerAccount"),
        str(account.id),
        "User Account",
        Description="iLO User Account",
        UserName=account.username,
        RoleId=account.role,
        Password=None,
        **extra,
        Links={"Role": link(f"{V1}/AccountService/Roles/{account.role}")},
        Oem={
            "Hpe": {
                "@odata.type": "#HpeiLOAccount.v2_2_0.HpeiLOAccount",
                "LoginName": account.login_name,
                "Privileges": {p: p in account.privileges for p in PRIVILEGES},
                "ServiceAccount": account.service_account,
            }
        },
    )


def _find_account(ctx: Ctx) -> Account:
    account = ctx.bmc.accounts.get(int(ctx.params[0]))
    if account is None:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/AccountService/Accounts/{ctx.params[0]}")
    return account


def _privileges(body: Json, current: frozenset[str]) -> frozenset[str]:
    privileges = ROLE_PRIVILEGES[body["RoleId"]] if "RoleId" in body else current
    for name, value in body.get("Oem", {}).get("Hpe", {}).get("Privileges", {}).items():
        privileges = privileges | {name} if value else privileges - {name}
    return privileges


async def create_account(ctx: Ctx) -> Reply:
    """POST Accounts: 201 and Location; unique UserName; iLO password length rule."""
    payload.check(ctx.body, _account_spec(ctx.bmc))
    payload.require(ctx.body, "UserName", "Password")
    ctx.bmc.check_password(ctx.body["Password"])
    privileges = _privileges(ctx.body, ROLE_PRIVILEGES["ReadOnly"])
    login = ctx.body.get("Oem", {}).get("Hpe", {}).get("LoginName")
    account = ctx.bmc.add_account(ctx.body["UserName"], ctx.body["Password"], privileges, login=login)
    account.enabled = ctx.body.get("Enabled", True)
    location = f"{ctx.base_url}{V1}/AccountService/Accounts/{account.id}/"
    return Reply(_account_body(ctx.bmc, account), 201, {"Location": location})


def get_account(ctx: Ctx) -> Json:
    """GET one account (Password always null)."""
    return _account_body(ctx.bmc, _find_account(ctx))


async def patch_account(ctx: Ctx) -> Reply:
    """PATCH an account: a user may change their own password; the rest needs UserConfigPriv."""
    account = _find_account(ctx)
    payload.check(ctx.body, _account_spec(ctx.bmc))
    if set(ctx.body) - {"Password"} or ctx.account is not account:
        _check_write(ctx, "UserConfigPriv")
    if "Password" in ctx.body:
        ctx.bmc.check_password(ctx.body["Password"])
    name = ctx.body.get("UserName", account.username)
    if any(a.username == name and a is not account for a in ctx.bmc.accounts.values()):
        raise RedfishError(400, f"{ILO}.UserAlreadyExist")
    account.username = name
    account.password = ctx.body.get("Password", account.password)
    account.privileges = _privileges(ctx.body, account.privileges)
    account.login_name = ctx.body.get("Oem", {}).get("Hpe", {}).get("LoginName", account.login_name)
    account.enabled = ctx.body.get("Enabled", account.enabled)
    if not account.enabled:
        for token in [t for t, s in ctx.bmc.sessions.items() if s.account is account]:
            del ctx.bmc.sessions[token]
    return Reply(success(f"{BASE}.AccountModified"))


async def delete_account(ctx: Ctx) -> Reply:
    """DELETE an account; service accounts cannot be deleted; its sessions end."""
    account = _find_account(ctx)
    if account.service_account:
        raise RedfishError(400, f"{BASE}.ResourceCannotBeDeleted")
    del ctx.bmc.accounts[account.id]
    for token in [t for t, s in ctx.bmc.sessions.items() if s.account is account]:
        del ctx.bmc.sessions[token]
    return Reply(success(f"{BASE}.AccountRemoved"))


ROLE_ASSIGNED = {
    "Administrator": ["Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"],
    "Operator": ["Login", "ConfigureSelf", "ConfigureComponents"],
    "ReadOnly": ["Login", "ConfigureSelf"],
}


def roles(ctx: Ctx) -> Json:
    """GET the Roles collection."""
    return collection(
        f"{V1}/AccountService/Roles",
        "RoleCollection",
        "Roles",
        [f"{V1}/AccountService/Roles/{r}" for r in ROLE_ASSIGNED],
    )


def get_role(ctx: Ctx) -> Json:
    """GET one of the three predefined roles."""
    name = next((r for r in ROLE_ASSIGNED if r.lower() == ctx.params[0]), None)
    if name is None:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/AccountService/Roles/{ctx.params[0]}")
    oem = sorted(p for p in ROLE_PRIVILEGES[name] if p not in ("LoginPriv",))
    return resource(
        f"{V1}/AccountService/Roles/{name}",
        "Role.v1_2_1.Role",
        name,
        f"{name} Role",
        RoleId=name,
        IsPredefined=True,
        AssignedPrivileges=ROLE_ASSIGNED[name],
        OemPrivileges=oem,
    )


# --- system ---------------------------------------------------------------------------------------------------------


def systems(ctx: Ctx) -> Json:
    """GET the Systems collection."""
    return collection(f"{V1}/Systems", "ComputerSystemCollection", "Computer Systems", [f"{V1}/Systems/1"])


def system(ctx: Ctx) -> Json:
    """GET Systems/1."""
    bmc = ctx.bmc
    ident = bmc.identity
    profile = bmc.profile
    on = bmc.power_state == "On"
    return resource(
        f"{V1}/Systems/1",
        profile.odata_type("ComputerSystem"),
        "1",
        "Computer System",
        SystemType="Physical",
        Manufacturer="HPE",
        Model=profile.product,
        SKU=profile.sku,
        SerialNumber=ident.serial,
        UUID=ident.uuid,
        HostName=f"host-{ident.name}" if on else "",
        BiosVersion=profile.bios,
        PowerState=bmc.power_state,
        IndicatorLED=bmc.indicator_led,
        Status={"State": "Enabled" if on else "Disabled", "Health": rollup(bmc), "HealthRollup": rollup(bmc)},
        ProcessorSummary={"Count": 2, "Model": profile.cpu, "Status": OK_ROLLUP},
        MemorySummary={"TotalSystemMemoryGiB": 256, "TotalSystemPersistentMemoryGiB": 0, "Status": OK_ROLLUP},
        Boot={
            "BootSourceOverrideEnabled": bmc.boot_enabled,
            "BootSourceOverrideMode": "UEFI",
            "BootSourceOverrideTarget": bmc.boot_target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": list(BOOT_TARGETS),
            "UefiTargetBootSourceOverride": "None",
        },
        EthernetInterfaces=link(f"{V1}/Systems/1/EthernetInterfaces"),
        Links={"Chassis": [link(f"{V1}/Chassis/1")], "ManagedBy": [link(f"{V1}/Managers/1")]},
        Actions={
            "#ComputerSystem.Reset": {
                "target": f"{V1}/Systems/1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": list(bmc.reset_types),
            }
        },
        Oem={
            "Hpe": {
                "@odata.type": "#HpeComputerSystemExt.v2_9_0.HpeComputerSystemExt",
                "PostState": bmc.post_state,
                "PowerAutoOn": "Restore",
                "PowerOnDelay": "Minimum",
                "Bios": {"Current": {"VersionString": profile.bios}},
                "DeviceDiscoveryComplete": {
                    "DeviceDiscovery": "vMainDeviceDiscoveryComplete" if bmc.post_state == "FinishedPost" else "Busy",
                },
                "Actions": {
                    "#HpeComputerSystemExt.PowerButton": {
                        "target": f"{V1}/Systems/1/Actions/Oem/Hpe/HpeComputerSystemExt.PowerButton",
                        "PushType@Redfish.AllowableValues": ["Press", "PressAndHold"],
                    },
                    "#HpeComputerSystemExt.SystemReset": {
                        "target": f"{V1}/Systems/1/Actions/Oem/Hpe/HpeComputerSystemExt.SystemReset",
                        "ResetType@Redfish.AllowableValues": ["ColdBoot", "AuxCycle"],
                    },
                },
            }
        },
    )


SYSTEM_SPEC: Spec = {
    "Boot": {
        "BootSourceOverrideEnabled": Field(str, enum=("Disabled", "Once", "Continuous")),
        "BootSourceOverrideTarget": Field(str, enum=BOOT_TARGETS),
        "UefiTargetBootSourceOverride": Field(str, enum=("None",)),
    },
    "IndicatorLED": Field(str, enum=("Lit", "Blinking", "Off")),
    "AssetTag": Field(str),
}


async def patch_system(ctx: Ctx) -> Reply:
    """PATCH Systems/1: the boot override (mode is read-only on HPE), the LED."""
    payload.check(ctx.body, SYSTEM_SPEC)
    boot = ctx.body.get("Boot", {})
    if "BootSourceOverrideEnabled" in boot or "BootSourceOverrideTarget" in boot:
        ctx.bmc.set_boot(boot.get("BootSourceOverrideEnabled"), boot.get("BootSourceOverrideTarget"))
    ctx.bmc.indicator_led = ctx.body.get("IndicatorLED", ctx.bmc.indicator_led)
    return Reply(success())


async def system_reset(ctx: Ctx) -> Reply:
    """POST ComputerSystem.Reset."""
    payload.check(ctx.body, {"ResetType": Field(str)})
    payload.require(ctx.body, "ResetType")
    await ctx.bmc.reset(ctx.body["ResetType"])
    return Reply(success())


async def oem_power_button(ctx: Ctx) -> Reply:
    """POST HpeComputerSystemExt.PowerButton: Press toggles, PressAndHold forces off."""
    payload.check(ctx.body, {"PushType": Field(str, enum=("Press", "PressAndHold"))})
    payload.require(ctx.body, "PushType")
    await ctx.bmc.reset("PushPowerButton" if ctx.body["PushType"] == "Press" else "ForceOff")
    return Reply(success())


async def oem_system_reset(ctx: Ctx) -> Reply:
    """POST HpeComputerSystemExt.SystemReset: a cold boot of the host."""
    payload.check(ctx.body, {"ResetType": Field(str, enum=("ColdBoot", "AuxCycle"))})
    payload.require(ctx.body, "ResetType")
    await ctx.bmc.reset("ForceRestart")
    return Reply(success())


def system_nics(ctx: Ctx) -> Json:
    """GET Systems/1/EthernetInterfaces."""
    ids = [f"{V1}/Systems/1/EthernetInterfaces/{n}" for n in range(1, len(ctx.bmc.identity.nic_macs) + 1)]
    return collection(f"{V1}/Systems/1/EthernetInterfaces", "EthernetInterfaceCollection", "System NICs", ids)


def system_nic(ctx: Ctx) -> Json:
    """GET one host NIC with its MAC."""
    n = int(ctx.params[0])
    macs = ctx.bmc.identity.nic_macs
    if not 1 <= n <= len(macs):
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Systems/1/EthernetInterfaces/{n}")
    up = ctx.bmc.power_state == "On"
    return resource(
        f"{V1}/Systems/1/EthernetInterfaces/{n}",
        "EthernetInterface.v1_4_1.EthernetInterface",
        str(n),
        f"Port {n}",
        MACAddress=macs[n - 1],
        PermanentMACAddress=macs[n - 1],
        SpeedMbps=25000 if up else None,
        LinkStatus="LinkUp" if up else "NoLink",
        Status={"State": "Enabled", "Health": "OK"},
    )


# --- chassis, power, thermal ----------------------------------------------------------------------------------------


def chassis_collection(ctx: Ctx) -> Json:
    """GET the Chassis collection."""
    return collection(f"{V1}/Chassis", "ChassisCollection", "Chassis", [f"{V1}/Chassis/1"])


def chassis(ctx: Ctx) -> Json:
    """GET Chassis/1: Power and Thermal (deprecated, unless switched off), and iLO 6's DMTF subsystems."""
    bmc = ctx.bmc
    profile = bmc.profile
    links: Json = {}
    if bmc.settings.power_thermal:
        links.update(Power=link(f"{V1}/Chassis/1/Power"), Thermal=link(f"{V1}/Chassis/1/Thermal"))
    if has_subsystems(bmc):
        links.update(
            PowerSubsystem=link(f"{V1}/Chassis/1/PowerSubsystem"),
            ThermalSubsystem=link(f"{V1}/Chassis/1/ThermalSubsystem"),
        )
    if bmc.at_least((99, 0), (1, 61)):
        links["EnvironmentMetrics"] = link(f"{V1}/Chassis/1/EnvironmentMetrics")
    return resource(
        f"{V1}/Chassis/1",
        profile.odata_type("Chassis"),
        "1",
        "Computer System Chassis",
        ChassisType="RackMount",
        Manufacturer="HPE",
        Model=profile.product,
        SKU=profile.sku,
        SerialNumber=bmc.identity.serial,
        PartNumber="",
        IndicatorLED=bmc.indicator_led,
        PowerState=bmc.power_state,
        Status={"State": "Enabled", "Health": rollup(bmc)},
        **links,
        Links={"ComputerSystems": [link(f"{V1}/Systems/1")], "ManagedBy": [link(f"{V1}/Managers/1")]},
        Oem={"Hpe": {"@odata.type": "#HpeServerChassis.v2_3_1.HpeServerChassis", "MCTPEnabledOnServer": True}},
    )


async def patch_chassis(ctx: Ctx) -> Reply:
    """PATCH Chassis/1: the LED."""
    payload.check(ctx.body, {"IndicatorLED": Field(str, enum=("Lit", "Blinking", "Off"))})
    ctx.bmc.indicator_led = ctx.body.get("IndicatorLED", ctx.bmc.indicator_led)
    return Reply(success())


def has_subsystems(bmc: Bmc) -> bool:
    """iLO 6 serves the DMTF PowerSubsystem, ThermalSubsystem and EnvironmentMetrics (its Fans from 1.64)."""
    return bmc.at_least((99, 0), (1, 64))


def _deprecated(ctx: Ctx, name: str) -> None:
    if not ctx.bmc.settings.power_thermal:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Chassis/1/{name}")


def psu_failed(bmc: Bmc, bay: int) -> bool:
    """Whether power-supply ``bay`` (1-based) was failed by the ``failed_psus`` fault."""
    return bay in bmc.faults.failed_psus


def fan_failed(bmc: Bmc, number: int) -> bool:
    """Whether fan ``number`` (1-based) was failed by the ``failed_fans`` fault."""
    return number in bmc.faults.failed_fans


def psu_output(bmc: Bmc, bay: int) -> int:
    """Watts one supply delivers: the load shared by the working ones."""
    working = [b for b in (1, 2) if not psu_failed(bmc, b)]
    return _watts(bmc) // len(working) if bay in working else 0


def fan_percent(bmc: Bmc, n: int) -> int:
    """Fan ``n`` (0-based) speed in percent: 0 when failed or the host is off."""
    if fan_failed(bmc, n + 1) or bmc.power_state != "On":
        return 0
    return 24 + round(4 * _wave(bmc, 60.0, n))


def temperature(bmc: Bmc, n: int) -> int:
    """Reading of sensor ``n`` of :data:`SENSORS`, moving over time."""
    name, _, hot, _, _ = SENSORS[n]
    ambient = 22 + round(2 * _wave(bmc, 600.0))
    if name == "01-Inlet Ambient":
        return ambient
    return hot + round(3 * _wave(bmc, 45.0, n)) if bmc.power_state == "On" else ambient + (n % 3)


def _watts(bmc: Bmc) -> int:
    if bmc.power_state != "On":
        return 11
    return round(235 + 45 * _wave(bmc, 90.0) + 10 * _wave(bmc, 7.0, 3))


def power(ctx: Ctx) -> Json:
    """GET Chassis/1/Power: consumption that moves over time (standby watts when off)."""
    _deprecated(ctx, "Power")
    bmc = ctx.bmc
    watts = _watts(bmc)
    path = f"{V1}/Chassis/1/Power"
    supplies = []
    for bay in (1, 2):
        output = psu_output(bmc, bay)
        supplies.append(
            {
                "@odata.id": f"{path}#/PowerSupplies/{bay - 1}",
                "MemberId": str(bay - 1),
                "Name": f"HpeServerPowerSupply {bay}",
                "FirmwareVersion": "1.00",
                "LastPowerOutputWatts": output,
                "LineInputVoltage": 230 + bay,
                "LineInputVoltageType": "ACHighLine",
                "Model": "865414-B21",
                "PowerCapacityWatts": 800,
                "PowerSupplyType": "AC",
                "SerialNumber": f"5WBXT0{bmc.identity.serial[-4:]}{bay}",
                "SparePartNumber": "866730-001",
                "Status": FAILED if psu_failed(bmc, bay) else OK,
                "Oem": {
                    "Hpe": {
                        "@odata.type": "#HpeServerPowerSupply.v2_0_0.HpeServerPowerSupply",
                        "BayNumber": bay,
                        "HotplugCapable": True,
                        "Mismatched": False,
                        "AveragePowerOutputWatts": output,
                        "MaxPowerOutputWatts": output + 30 if output else 0,
                    }
                },
            }
        )
    return resource(
        path,
        bmc.profile.odata_type("Power"),
        "Power",
        "PowerMetrics",
        PowerControl=[
            {
                "@odata.id": f"{path}#/PowerControl/0",
                "MemberId": "0",
                "Name": "Server Power Control",
                "PowerCapacityWatts": 1600,
                "PowerConsumedWatts": watts,
                "PowerLimit": {"LimitInWatts": None},
                "PowerMetrics": {
                    "AverageConsumedWatts": max(watts - 5, 11),
                    "IntervalInMin": 20,
                    "MaxConsumedWatts": watts + 40 if watts > 11 else watts,
                    "MinConsumedWatts": max(watts - 40, 11),
                },
            }
        ],
        PowerSupplies=supplies,
        Redundancy=[
            {
                "@odata.id": f"{path}#/Redundancy/0",
                "MemberId": "0",
                "Name": "PowerSupply Redundancy Group 1",
                "Mode": "Failover",
                "MaxNumSupported": 2,
                "MinNumNeeded": 1,
                "RedundancySet": [link(f"{path}#/PowerSupplies/0"), link(f"{path}#/PowerSupplies/1")],
                "Status": {"State": "Enabled", "Health": "Warning" if bmc.faults.failed_psus else "OK"},
            }
        ],
        Oem={
            "Hpe": {
                "@odata.type": "#HpePowerMetricsExt.v2_2_0.HpePowerMetricsExt",
                "HasCpuPowerMetering": True,
                "HasDimmPowerMetering": True,
                "HasGpuPowerMetering": False,
                "HasPowerMetering": True,
                "HighEfficiencyMode": "Balanced",
            }
        },
    )


FANS = 7
# (name, physical context, reading when on, upper critical, upper fatal)
SENSORS = (
    ("01-Inlet Ambient", "Intake", 22, 42, 47),
    ("02-CPU 1", "CPU", 45, 70, None),
    ("03-CPU 2", "CPU", 43, 70, None),
    ("04-P1 DIMM 1-8", "SystemBoard", 33, 90, None),
    ("06-P1 DIMM 9-16", "SystemBoard", 32, 90, None),
    ("08-P2 DIMM 1-8", "SystemBoard", 33, 90, None),
    ("10-P2 DIMM 9-16", "SystemBoard", 32, 90, None),
    ("12-HD Max", "SystemBoard", 35, 60, None),
    ("13-Exp Bay Drive", "SystemBoard", 34, 75, None),
    ("14-Stor Batt 1", "SystemBoard", 26, 60, None),
    ("15-Front Ambient", "Intake", 25, 65, None),
    ("16-VR P1", "SystemBoard", 41, 115, 120),
    ("18-VR P2", "SystemBoard", 40, 115, 120),
    ("20-VR P1 Mem 1", "SystemBoard", 35, 115, 120),
    ("24-PS 1 Inlet", "PowerSupply", 30, None, None),
    ("25-PS 2 Inlet", "PowerSupply", 30, None, None),
    ("28-P/S 2 Zone", "PowerSupply", 33, 75, 80),
    ("33-BMC", "SystemBoard", 58, 110, 115),
    ("35-NVMe Zone", "SystemBoard", 37, 75, 80),
    ("37-OCP 1", "SystemBoard", 48, 100, None),
)


def thermal(ctx: Ctx) -> Json:
    """GET Chassis/1/Thermal: DL360 sensors and 7 fans, readings that move over time."""
    _deprecated(ctx, "Thermal")
    bmc = ctx.bmc
    path = f"{V1}/Chassis/1/Thermal"
    temperatures = []
    for n, (name, context, _, critical, fatal) in enumerate(SENSORS):
        reading = temperature(bmc, n)
        temperatures.append(
            {
                "@odata.id": f"{path}#/Temperatures/{n}",
                "MemberId": str(n),
                "Name": name,
                "SensorNumber": n + 1,
                "PhysicalContext": context,
                "ReadingCelsius": reading,
                "UpperThresholdCritical": critical,
                "UpperThresholdFatal": fatal,
                "Status": OK,
                "Oem": {
                    "Hpe": {
                        "@odata.type": "#HpeSeaOfSensors.v2_0_0.HpeSeaOfSensors",
                        "LocationXmm": 10 + n,
                        "LocationYmm": 5 + n,
                    }
                },
            }
        )
    fans = [
        {
            "@odata.id": f"{path}#/Fans/{n}",
            "MemberId": str(n),
            "Name": f"Fan {n + 1}",
            "Reading": fan_percent(bmc, n),
            "ReadingUnits": "Percent",
            "Status": FAILED if fan_failed(bmc, n + 1) else OK,
            "Oem": {
                "Hpe": {
                    "@odata.type": "#HpeServerFan.v2_0_0.HpeServerFan",
                    "Location": "System",
                    "Redundant": True,
                    "HotPluggable": True,
                }
            },
        }
        for n in range(FANS)
    ]
    return resource(path, bmc.profile.odata_type("Thermal"), "Thermal", "Thermal", Temperatures=temperatures, Fans=fans)


# --- manager ----------------------------------------------------------------------------------------------------------


def managers(ctx: Ctx) -> Json:
    """GET the Managers collection."""
    return collection(f"{V1}/Managers", "ManagerCollection", "Managers", [f"{V1}/Managers/1"])


def manager(ctx: Ctx) -> Json:
    """GET Managers/1."""
    bmc = ctx.bmc
    major, minor = bmc.firmware
    profile = bmc.profile
    version = f"{profile.manager} v{bmc.settings.firmware}"
    licence, _ = bmc.license
    return resource(
        f"{V1}/Managers/1",
        profile.odata_type("Manager"),
        "1",
        "Manager",
        ManagerType="BMC",
        Model=profile.manager,
        FirmwareVersion=version,
        UUID=bmc.manager_uuid,
        Status=OK,
        NetworkProtocol=link(f"{V1}/Managers/1/NetworkProtocol"),
        EthernetInterfaces=link(f"{V1}/Managers/1/EthernetInterfaces"),
        VirtualMedia=link(f"{V1}/Managers/1/VirtualMedia"),
        Links={
            "ManagerForServers": [link(f"{V1}/Systems/1")],
            "ManagerForChassis": [link(f"{V1}/Chassis/1")],
            "ManagerInChassis": link(f"{V1}/Chassis/1"),
        },
        Actions={
            "#Manager.Reset": {
                "target": f"{V1}/Managers/1/Actions/Manager.Reset",
                "ResetType@Redfish.AllowableValues": ["ForceRestart", "GracefulRestart"],
            }
        },
        Oem={
            "Hpe": {
                "@odata.type": "#HpeiLO.v2_7_1.HpeiLO",
                "ConfigurationSettings": "SomePendingReset" if bmc.pending_reset else "Current",
                "Firmware": {
                    "Current": {
                        "DebugBuild": False,
                        "MajorVersion": major,
                        "MinorVersion": minor,
                        "VersionString": version,
                    }
                },
                "License": {"LicenseString": licence, "LicenseType": "Perpetual"},
                **bmc.manager_oem,
                "Links": {
                    "SNMPService": link(f"{V1}/Managers/1/SnmpService"),
                    "LicenseService": link(f"{V1}/Managers/1/LicenseService"),
                },
            }
        },
    )


async def patch_manager(ctx: Ctx) -> Reply:
    """PATCH Managers/1: a few Oem.Hpe switches (RIBCL and web GUI need an iLO reset)."""
    spec: Spec = {
        "Oem": {
            "Hpe": {
                "IdleConnectionTimeoutMinutes": Field(int, check=payload.one_of(0, 15, 30, 60, 120)),
                "RIBCLEnabled": Field(bool),
                "WebGuiEnabled": Field(bool),
                "VirtualNICEnabled": Field(bool),
                "RequireHostAuthentication": Field(bool),
            }
        }
    }
    payload.check(ctx.body, spec)
    changes = ctx.body.get("Oem", {}).get("Hpe", {})
    needs_reset = any(k in changes and changes[k] != ctx.bmc.manager_oem[k] for k in ("RIBCLEnabled", "WebGuiEnabled"))
    ctx.bmc.manager_oem.update(changes)
    if "IdleConnectionTimeoutMinutes" in changes:
        ctx.bmc.settings.session_timeout = 60.0 * (changes["IdleConnectionTimeoutMinutes"] or 1440)
    return _maybe_pending(ctx.bmc, needs_reset)


def _maybe_pending(bmc: Bmc, needs_reset: bool) -> Reply:
    if needs_reset:
        bmc.pending_reset = True
        return Reply(success(f"{ILO}.ResetRequired"))
    return Reply(success())


async def manager_reset(ctx: Ctx) -> Reply:
    """POST Manager.Reset: the iLO reboots (unreachable for a while) and every session ends."""
    payload.check(ctx.body, {"ResetType": Field(str, enum=("ForceRestart", "GracefulRestart"))})
    ctx.bmc.reset_manager()
    return Reply(success(f"{ILO}.ResetInProgress"))


def manager_nics(ctx: Ctx) -> Json:
    """GET Managers/1/EthernetInterfaces."""
    return collection(
        f"{V1}/Managers/1/EthernetInterfaces",
        "EthernetInterfaceCollection",
        "Manager NICs",
        [f"{V1}/Managers/1/EthernetInterfaces/1"],
    )


def manager_nic(ctx: Ctx) -> Json:
    """GET the iLO's dedicated NIC (its MAC is the one the DHCP server sees)."""
    if ctx.params[0] != "1":
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Managers/1/EthernetInterfaces/{ctx.params[0]}")
    bmc = ctx.bmc
    host = f"ILO{bmc.identity.serial}"
    return resource(
        f"{V1}/Managers/1/EthernetInterfaces/1",
        "EthernetInterface.v1_4_1.EthernetInterface",
        "1",
        "Manager Dedicated Network Interface",
        MACAddress=bmc.identity.bmc_mac,
        PermanentMACAddress=bmc.identity.bmc_mac,
        HostName=host,
        FQDN=f"{host}.lab.local",
        InterfaceEnabled=True,
        LinkStatus="LinkUp",
        SpeedMbps=1000,
        FullDuplex=True,
        IPv4Addresses=[
            {"Address": bmc.address, "SubnetMask": "255.0.0.0", "AddressOrigin": "DHCP", "Gateway": "127.0.0.1"}
        ],
        Status=OK,
    )


PROTOCOL_SPEC: Spec = {"Port": Field(int, check=payload.port_number), "ProtocolEnabled": Field(bool)}
NETWORK_SPEC: Spec = {
    **dict.fromkeys(("HTTP", "HTTPS", "IPMI", "KVMIP", "SNMP", "SSH", "VirtualMedia"), PROTOCOL_SPEC),
    "SSDP": {"ProtocolEnabled": Field(bool)},
    "Oem": {
        "Hpe": {
            "RemoteSyslogServer": Field(str, check=payload.between(0, 255)),
            "RemoteSyslogPort": Field(int, check=payload.port_number),
            "RemoteSyslogEnabled": Field(bool),
        }
    },
}
ILO6_NETWORK_SPEC: Spec = {
    **NETWORK_SPEC,
    "HTTP": {"Port": Field(int, check=payload.between(0, 65535)), "ProtocolEnabled": Field(bool)},
}
"""iLO 6: HTTP ``Port`` 0 turns plain HTTP off alone; ``HTTP.ProtocolEnabled`` switches HTTP and HTTPS together."""
RESET_REQUIRED = {("SNMP", "ProtocolEnabled"), ("SNMP", "Port"), ("HTTP", "Port"), ("HTTPS", "Port"), ("IPMI", "Port")}


def network_protocol(ctx: Ctx) -> Json:
    """GET Managers/1/NetworkProtocol (remote syslog lives in its Oem.Hpe)."""
    bmc = ctx.bmc
    host = f"ILO{bmc.identity.serial}"
    protocols: Json = {name: dict(values) for name, values in bmc.protocols.items()}
    protocols["SSDP"].update(NotifyIPv6Scope="Site", NotifyMulticastIntervalSeconds=600, NotifyTTL=5)
    return resource(
        f"{V1}/Managers/1/NetworkProtocol",
        "ManagerNetworkProtocol.v1_0_0.ManagerNetworkProtocol",
        "NetworkProtocol",
        "Manager Network Protocol",
        HostName=host,
        FQDN=f"{host}.lab.local",
        Status=OK,
        **protocols,
        Oem={
            "Hpe": {
                "@odata.type": "#HpeiLOManagerNetworkProtocol.v2_1_0.HpeiLOManagerNetworkProtocol",
                "ConfigurationSettings": "SomePendingReset" if bmc.pending_reset else "Current",
                "SNMPTrapPort": 162,
                "XMLResponseEnabled": True,
                "FederationEnabled": True,
                **bmc.syslog,
                "Actions": {
                    "#HpeiLOManagerNetworkService.SendTestSyslog": {
                        "target": f"{V1}/Managers/1/NetworkProtocol/Actions/Oem/Hpe/"
                        "HpeiLOManagerNetworkService.SendTestSyslog"
                    }
                },
            }
        },
    )


async def patch_network_protocol(ctx: Ctx) -> Reply:
    """PATCH NetworkProtocol: some changes need an iLO reset; an SSH change resets the iLO by itself."""
    bmc = ctx.bmc
    payload.check(ctx.body, ILO6_NETWORK_SPEC if bmc.ilo6 else NETWORK_SPEC)
    syslog = ctx.body.get("Oem", {}).get("Hpe", {})
    if syslog:
        if not bmc.license[1]:
            raise RedfishError(400, f"{ILO}.LicenseKeyRequired")
        merged = {**bmc.syslog, **syslog}
        if merged["RemoteSyslogEnabled"] and not merged["RemoteSyslogServer"]:
            raise RedfishError(
                400, f"{ILO}.PropertyValueBadParam", "RemoteSyslogEnabled", "requires RemoteSyslogServer to be set"
            )
    changed = {
        (name, key)
        for name, values in ctx.body.items()
        if name in bmc.protocols
        for key, value in values.items()
        if bmc.protocols[name][key] != value
    }
    for name, key in changed:
        bmc.protocols[name][key] = ctx.body[name][key]
    if bmc.ilo6 and ("HTTP", "ProtocolEnabled") in changed:  # iLO 6: one switch for HTTP and HTTPS
        bmc.protocols["HTTPS"]["ProtocolEnabled"] = bmc.protocols["HTTP"]["ProtocolEnabled"]
        changed.add(("HTTPS", "Port"))  # needs the iLO reset too
    bmc.syslog.update(syslog)
    if any(name == "SSH" for name, _ in changed):
        bmc.reset_manager()
        return Reply(success(f"{ILO}.ResetInProgress"))
    return _maybe_pending(bmc, bool(changed & RESET_REQUIRED))


async def send_test_syslog(ctx: Ctx) -> Reply:
    """POST SendTestSyslog: refused while remote syslog is off."""
    if not ctx.bmc.syslog["RemoteSyslogEnabled"]:
        raise RedfishError(400, f"{ILO}.SyslogFeatureDisabled")
    return Reply(success())


# --- SNMP ---------------------------------------------------------------------------------------------------------

SNMP_PATH = f"{V1}/Managers/1/SnmpService"


def _snmp_enabled(bmc: Bmc) -> None:
    if not bmc.protocols["SNMP"]["ProtocolEnabled"]:
        raise RedfishError(400, f"{ILO}.SNMPDisabled")


def _communities(size: int) -> Field:
    def check(values: list[Any]) -> str | None:
        ok = len(values) <= size and all(isinstance(v, str) and len(v) <= 64 for v in values)
        return None if ok else f"at most {size} strings"

    return Field(list, check=check)


def snmp_service(ctx: Ctx) -> Json:
    """GET SnmpService (an HPE OEM resource); v1/v3 request and trap flags from firmware 2.90."""
    bmc = ctx.bmc
    hidden = set()
    if not bmc.at_least((2, 90)):
        hidden |= {"SNMPv1RequestsEnabled", "SNMPv1TrapEnabled", "SNMPv3RequestsEnabled", "SNMPv3TrapEnabled"}
    if not bmc.at_least((2, 30)):
        hidden.add("SNMPv1Enabled")
    return resource(
        SNMP_PATH,
        "HpeiLOSnmpService.v2_3_0.HpeiLOSnmpService",
        "SnmpService",
        "SNMP Service",
        **{k: v for k, v in bmc.snmp.items() if k not in hidden},
        Status=OK,
        SNMPUsers=link(f"{SNMP_PATH}/SNMPUsers"),
        SNMPAlertDestinations=link(f"{SNMP_PATH}/SNMPAlertDestinations"),
        Actions={
            "#HpeiLOSnmpService.SendSNMPTestAlert": {
                "target": f"{SNMP_PATH}/Actions/HpeiLOSnmpService.SendSNMPTestAlert"
            }
        },
    )


async def patch_snmp_service(ctx: Ctx) -> Reply:
    """PATCH SnmpService: SNMPv1Enabled drives both v1 flags, AlertsEnabled both trap flags; v1 changes need a reset."""
    bmc = ctx.bmc
    flags = ("SNMPv1RequestsEnabled", "SNMPv1TrapEnabled", "SNMPv3RequestsEnabled", "SNMPv3TrapEnabled")
    spec: dict[str, Any] = {
        "AlertsEnabled": Field(bool),
        "ReadCommunities": _communities(3),
        "TrapCommunities": _communities(8),
        **{k: Field(str) for k in ("Contact", "Location", "Role", "RoleDetail")},
        "TrapSourceHostname": Field(str, enum=("Manager", "System")),
        "SNMPv3InformRetryAttempt": Field(int, check=payload.between(0, 5)),
        "SNMPv3InformRetryIntervalSeconds": Field(int, check=payload.between(5, 120)),
    }
    if bmc.at_least((2, 30)):
        spec["SNMPv1Enabled"] = Field(bool)
    if bmc.at_least((2, 90)):
        spec.update({k: Field(bool) for k in flags})
    payload.check(ctx.body, spec)
    _snmp_enabled(bmc)
    body = ctx.body
    needs_reset = "SNMPv1Enabled" in body and body["SNMPv1Enabled"] != bmc.snmp["SNMPv1Enabled"]
    bmc.snmp.update({k: v for k, v in body.items() if not k.startswith("@")})
    if "SNMPv1Enabled" in body:
        bmc.snmp["SNMPv1RequestsEnabled"] = bmc.snmp["SNMPv1TrapEnabled"] = body["SNMPv1Enabled"]
    if "AlertsEnabled" in body:
        bmc.snmp["SNMPv1TrapEnabled"] = bmc.snmp["SNMPv3TrapEnabled"] = body["AlertsEnabled"]
    return _maybe_pending(bmc, needs_reset)


async def snmp_test_alert(ctx: Ctx) -> Reply:
    """POST SendSNMPTestAlert."""
    _snmp_enabled(ctx.bmc)
    return Reply(success())


def _engine_id(value: str) -> str | None:
    ok = value[:2] == "0x" and 10 <= len(value) <= 64 and len(value) % 2 == 0 and _is_hex(value[2:])
    return None if ok else "0x followed by an even number of hex digits, 10..64 characters"


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in value)


SNMP_USER_SPEC: Spec = {
    "SecurityName": Field(str, check=payload.between(1, 32)),
    "AuthProtocol": Field(str, enum=("MD5", "SHA", "SHA256")),
    "AuthPassphrase": Field(str, check=payload.between(8, 48)),
    "PrivacyProtocol": Field(str, enum=("DES", "AES")),
    "PrivacyPassphrase": Field(str, check=payload.between(8, 48)),
    "UserEngineID": Field(str, check=_engine_id),
}
SNMP_USER_PUBLIC = ("SecurityName", "AuthProtocol", "PrivacyProtocol", "UserEngineID")


def _free_slot(slots: Mapping[int, Any], size: int) -> int:
    slot = next((n for n in range(1, size + 1) if n not in slots), None)
    if slot is None:
        raise RedfishError(400, f"{BASE}.CreateLimitReachedForResource")
    return slot


def _slot(ctx: Ctx, slots: Mapping[int, Json], path: str) -> int:
    slot = int(ctx.params[0])
    if slot not in slots:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{path}/{slot}")
    return slot


def snmp_users(ctx: Ctx) -> Json:
    """GET SNMPUsers."""
    ids = [f"{SNMP_PATH}/SNMPUsers/{n}" for n in sorted(ctx.bmc.snmp_users)]
    return collection(f"{SNMP_PATH}/SNMPUsers", "HpeSNMPUsersCollection", "SNMP Users", ids)


def _snmp_user_body(slot: int, user: Json) -> Json:
    return resource(
        f"{SNMP_PATH}/SNMPUsers/{slot}",
        "HpeSNMPUser.v2_1_0.HpeSNMPUser",
        str(slot),
        "SNMP User",
        **{k: user.get(k, "") for k in SNMP_USER_PUBLIC},
    )


async def create_snmp_user(ctx: Ctx) -> Reply:
    """POST SNMPUsers: the member id is the first free of 8 slots; passphrases are never returned."""
    bmc = ctx.bmc
    payload.check(ctx.body, SNMP_USER_SPEC)
    payload.require(ctx.body, "SecurityName", "AuthProtocol", "AuthPassphrase", "PrivacyProtocol", "PrivacyPassphrase")
    _snmp_enabled(bmc)
    if any(u["SecurityName"] == ctx.body["SecurityName"] for u in bmc.snmp_users.values()):
        raise RedfishError(400, f"{ILO}.UserAlreadyExist")
    slot = _free_slot(bmc.snmp_users, 8)
    bmc.snmp_users[slot] = {"UserEngineID": "", **ctx.body}
    return Reply(
        _snmp_user_body(slot, bmc.snmp_users[slot]), 201, {"Location": f"{ctx.base_url}{SNMP_PATH}/SNMPUsers/{slot}/"}
    )


def get_snmp_user(ctx: Ctx) -> Json:
    """GET one SNMPv3 user."""
    slot = _slot(ctx, ctx.bmc.snmp_users, f"{SNMP_PATH}/SNMPUsers")
    return _snmp_user_body(slot, ctx.bmc.snmp_users[slot])


async def patch_snmp_user(ctx: Ctx) -> Reply:
    """PATCH one SNMPv3 user."""
    slot = _slot(ctx, ctx.bmc.snmp_users, f"{SNMP_PATH}/SNMPUsers")
    payload.check(ctx.body, SNMP_USER_SPEC)
    _snmp_enabled(ctx.bmc)
    ctx.bmc.snmp_users[slot].update(ctx.body)
    return Reply(success())


async def delete_snmp_user(ctx: Ctx) -> Reply:
    """DELETE one SNMPv3 user."""
    slot = _slot(ctx, ctx.bmc.snmp_users, f"{SNMP_PATH}/SNMPUsers")
    del ctx.bmc.snmp_users[slot]
    return Reply(success())


ALERT_SPEC: Spec = {
    "AlertDestination": Field(str, check=payload.between(1, 255)),
    "SNMPAlertProtocol": Field(str, enum=("SNMPv1Trap", "SNMPv3Trap", "SNMPv3Inform")),
    "TrapCommunity": Field(str),
    "SecurityName": Field(str),
}


def alert_destinations(ctx: Ctx) -> Json:
    """GET SNMPAlertDestinations."""
    ids = [f"{SNMP_PATH}/SNMPAlertDestinations/{n}" for n in sorted(ctx.bmc.alert_destinations)]
    return collection(
        f"{SNMP_PATH}/SNMPAlertDestinations", "HpeSNMPAlertDestinationCollection", "SNMP Alert Destinations", ids
    )


def _alert_body(bmc: Bmc, slot: int, dest: Json) -> Json:
    body = resource(
        f"{SNMP_PATH}/SNMPAlertDestinations/{slot}",
        "HpeSNMPAlertDestination.v2_0_0.HpeSNMPAlertDestination",
        str(slot),
        "SNMP Alert Destination",
        **{"TrapCommunity": "", "SecurityName": None, **dest},
    )
    user = next((n for n, u in bmc.snmp_users.items() if u["SecurityName"] == dest.get("SecurityName")), None)
    if user is not None:
        body["Links"] = {"SNMPv3User": link(f"{SNMP_PATH}/SNMPUsers/{user}")}
    return body


def _check_alert(bmc: Bmc, dest: Json) -> None:
    if dest["SNMPAlertProtocol"] != "SNMPv1Trap":
        name = dest.get("SecurityName")
        if not any(u["SecurityName"] == name for u in bmc.snmp_users.values()):
            raise RedfishError(400, f"{ILO}.PropertyValueBadParam", "SecurityName", "an SNMPv3 user is required")


async def create_alert_destination(ctx: Ctx) -> Reply:
    """POST SNMPAlertDestinations (8 slots); SNMPv3 destinations name an existing SNMPv3 user."""
    bmc = ctx.bmc
    payload.check(ctx.body, ALERT_SPEC)
    payload.require(ctx.body, "AlertDestination", "SNMPAlertProtocol")
    _snmp_enabled(bmc)
    _check_alert(bmc, ctx.body)
    slot = _free_slot(bmc.alert_destinations, 8)
    bmc.alert_destinations[slot] = dict(ctx.body)
    return Reply(
        _alert_body(bmc, slot, ctx.body), 201, {"Location": f"{ctx.base_url}{SNMP_PATH}/SNMPAlertDestinations/{slot}/"}
    )


def get_alert_destination(ctx: Ctx) -> Json:
    """GET one alert destination."""
    slot = _slot(ctx, ctx.bmc.alert_destinations, f"{SNMP_PATH}/SNMPAlertDestinations")
    return _alert_body(ctx.bmc, slot, ctx.bmc.alert_destinations[slot])


async def patch_alert_destination(ctx: Ctx) -> Reply:
    """PATCH one alert destination."""
    slot = _slot(ctx, ctx.bmc.alert_destinations, f"{SNMP_PATH}/SNMPAlertDestinations")
    payload.check(ctx.body, ALERT_SPEC)
    merged = {**ctx.bmc.alert_destinations[slot], **ctx.body}
    _check_alert(ctx.bmc, merged)
    ctx.bmc.alert_destinations[slot] = merged
    return Reply(success())


async def delete_alert_destination(ctx: Ctx) -> Reply:
    """DELETE one alert destination."""
    slot = _slot(ctx, ctx.bmc.alert_destinations, f"{SNMP_PATH}/SNMPAlertDestinations")
    del ctx.bmc.alert_destinations[slot]
    return Reply(success())


# --- virtual media and licence ------------------------------------------------------------------------------------

MEDIA_TYPES = {1: ["Floppy", "USBStick"], 2: ["CD", "DVD"]}
MEDIA_SPEC: Spec = {"Image": Field(str, nullable=True), "Inserted": Field(bool), "WriteProtected": Field(bool)}


def virtual_media_collection(ctx: Ctx) -> Json:
    """GET Managers/1/VirtualMedia."""
    ids = [f"{V1}/Managers/1/VirtualMedia/{n}" for n in sorted(ctx.bmc.virtual_media)]
    return collection(f"{V1}/Managers/1/VirtualMedia", "VirtualMediaCollection", "Virtual Media Services", ids)


def _media(ctx: Ctx) -> tuple[int, Json]:
    slot = int(ctx.params[0])
    if slot not in ctx.bmc.virtual_media:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Managers/1/VirtualMedia/{slot}")
    return slot, ctx.bmc.virtual_media[slot]


def virtual_media(ctx: Ctx) -> Json:
    """GET one virtual media device."""
    slot, media = _media(ctx)
    path = f"{V1}/Managers/1/VirtualMedia/{slot}"
    image = media["Image"] or None
    return resource(
        path,
        "VirtualMedia.v1_2_0.VirtualMedia",
        str(slot),
        "VirtualMedia",
        MediaTypes=MEDIA_TYPES[slot],
        Image=image,
        **({"ImageName": image.rsplit("/", 1)[-1]} if image else {}),
        Inserted=media["Inserted"],
        WriteProtected=media["WriteProtected"],
        ConnectedVia="URI" if media["Inserted"] else "NotConnected",
        Actions={
            "#VirtualMedia.InsertMedia": {"target": f"{path}/Actions/VirtualMedia.InsertMedia"},
            "#VirtualMedia.EjectMedia": {"target": f"{path}/Actions/VirtualMedia.EjectMedia"},
        },
    )


def _media_protocol(bmc: Bmc) -> None:
    if not bmc.protocols["VirtualMedia"]["ProtocolEnabled"]:
        raise RedfishError(400, f"{ILO}.VirtualMediaIsDisabled")


async def patch_virtual_media(ctx: Ctx) -> Reply:
    """PATCH a virtual media device: Image (null ejects), Inserted, WriteProtected."""
    _, media = _media(ctx)
    payload.check(ctx.body, MEDIA_SPEC)
    _media_protocol(ctx.bmc)
    if "Image" in ctx.body:
        media["Image"] = ctx.body["Image"] or ""
        media["Inserted"] = bool(media["Image"])
    media.update({k: v for k, v in ctx.body.items() if k in ("Inserted", "WriteProtected")})
    return Reply(success())


async def insert_media(ctx: Ctx) -> Reply:
    """POST VirtualMedia.InsertMedia."""
    _, media = _media(ctx)
    payload.check(ctx.body, {"Image": Field(str), "Inserted": Field(bool), "WriteProtected": Field(bool)})
    payload.require(ctx.body, "Image")
    _media_protocol(ctx.bmc)
    if media["Inserted"]:
        raise RedfishError(400, f"{ILO}.MediaAlreadyInserted")
    media.update(Image=ctx.body["Image"], Inserted=True, WriteProtected=ctx.body.get("WriteProtected", True))
    return Reply(success())


async def eject_media(ctx: Ctx) -> Reply:
    """POST VirtualMedia.EjectMedia."""
    _, media = _media(ctx)
    payload.check(ctx.body, {})
    media.update(Image="", Inserted=False)
    return Reply(success())


def licenses(ctx: Ctx) -> Json:
    """GET Managers/1/LicenseService (HPE OEM)."""
    return collection(
        f"{V1}/Managers/1/LicenseService",
        "HpeiLOLicenseCollection",
        "License Service",
        [f"{V1}/Managers/1/LicenseService/1"],
    )


def license_(ctx: Ctx) -> Json:
    """GET the installed licence and its features."""
    if ctx.params[0] != "1":
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Managers/1/LicenseService/{ctx.params[0]}")
    name, advanced = ctx.bmc.license
    return resource(
        f"{V1}/Managers/1/LicenseService/1",
        "HpeiLOLicense.v2_3_0.HpeiLOLicense",
        "1",
        "iLO License",
        License=name,
        LicenseKey="XXXXX-XXXXX-XXXXX-XXXXX-" + ctx.bmc.identity.serial[-5:],
        LicenseType="Perpetual",
        LicenseFeatures={
            "RemoteSyslog": advanced,
            "DirectoryAuth": advanced,
            "FederationControl": advanced,
            "KeyMgr": advanced,
            "PowerReg": advanced,
            "VirtualMedia": True,
        },
    )


# --- the table ------------------------------------------------------------------------------------------------------


def _r(pattern: str, **methods: Any) -> Resource:
    return Resource(re.compile(pattern.lower()), **methods)


SYSTEM_PRIV = "VirtualPowerAndResetPriv"
RESOURCES = (
    _r(V1, get=service_root),
    _r(f"{V1}/sessionservice", get=session_service, patch=patch_session_service),
    _r(f"{V1}/sessionservice/sessions", get=sessions, post=create_session, privilege="LoginPriv"),
    _r(f"{V1}/sessionservice/sessions/([a-z0-9]+)", get=get_session, delete=delete_session, privilege="LoginPriv"),
    _r(f"{V1}/sessions", post=create_session, privilege="LoginPriv"),
    _r(f"{V1}/accountservice", get=account_service, patch=patch_account_service, privilege="UserConfigPriv"),
    _r(f"{V1}/accountservice/accounts", get=accounts, post=create_account, privilege="UserConfigPriv"),
    _r(
        f"{V1}/accountservice/accounts/(\\d+)",
        get=get_account,
        patch=patch_account,
        delete=delete_account,
        privilege="LoginPriv",
    ),
    _r(f"{V1}/accountservice/roles", get=roles),
    _r(f"{V1}/accountservice/roles/([a-z]+)", get=get_role),
    _r(f"{V1}/systems", get=systems),
    _r(f"{V1}/systems/1", get=system, patch=patch_system, privilege=SYSTEM_PRIV),
    _r(f"{V1}/systems/1/actions/computersystem.reset", post=system_reset, privilege=SYSTEM_PRIV),
    _r(
        f"{V1}/systems/1/actions/oem/hpe/hpecomputersystemext.powerbutton", post=oem_power_button, privilege=SYSTEM_PRIV
    ),
    _r(
        f"{V1}/systems/1/actions/oem/hpe/hpecomputersystemext.systemreset", post=oem_system_reset, privilege=SYSTEM_PRIV
    ),
    _r(f"{V1}/systems/1/ethernetinterfaces", get=system_nics),
    _r(f"{V1}/systems/1/ethernetinterfaces/(\\d+)", get=system_nic),
    _r(f"{V1}/chassis", get=chassis_collection),
    _r(f"{V1}/chassis/1", get=chassis, patch=patch_chassis, privilege="LoginPriv"),
    _r(f"{V1}/chassis/1/power", get=power),
    _r(f"{V1}/chassis/1/thermal", get=thermal),
    _r(f"{V1}/managers", get=managers),
    _r(f"{V1}/managers/1", get=manager, patch=patch_manager),
    _r(f"{V1}/managers/1/actions/manager.reset", post=manager_reset),
    _r(f"{V1}/managers/1/ethernetinterfaces", get=manager_nics),
    _r(f"{V1}/managers/1/ethernetinterfaces/(\\d+)", get=manager_nic),
    _r(f"{V1}/managers/1/networkprotocol", get=network_protocol, patch=patch_network_protocol),
    _r(
        f"{V1}/managers/1/networkprotocol/actions/oem/hpe/hpeilomanagernetworkservice.sendtestsyslog",
        post=send_test_syslog,
    ),
    _r(SNMP_PATH, get=snmp_service, patch=patch_snmp_service),
    _r(f"{SNMP_PATH}/actions/hpeilosnmpservice.sendsnmptestalert", post=snmp_test_alert),
    _r(f"{SNMP_PATH}/snmpusers", get=snmp_users, post=create_snmp_user),
    _r(f"{SNMP_PATH}/snmpusers/(\\d+)", get=get_snmp_user, patch=patch_snmp_user, delete=delete_snmp_user),
    _r(f"{SNMP_PATH}/snmpalertdestinations", get=alert_destinations, post=create_alert_destination),
    _r(
        f"{SNMP_PATH}/snmpalertdestinations/(\\d+)",
        get=get_alert_destination,
        patch=patch_alert_destination,
        delete=delete_alert_destination,
    ),
    _r(f"{V1}/managers/1/virtualmedia", get=virtual_media_collection),
    _r(
        f"{V1}/managers/1/virtualmedia/(\\d+)",
        get=virtual_media,
        patch=patch_virtual_media,
        privilege="VirtualMediaPriv",
    ),
    _r(
        f"{V1}/managers/1/virtualmedia/(\\d+)/actions/virtualmedia.insertmedia",
        post=insert_media,
        privilege="VirtualMediaPriv",
    ),
    _r(
        f"{V1}/managers/1/virtualmedia/(\\d+)/actions/virtualmedia.ejectmedia",
        post=eject_media,
        privilege="VirtualMediaPriv",
    ),
    _r(f"{V1}/managers/1/licenseservice", get=licenses),
    _r(f"{V1}/managers/1/licenseservice/(\\d+)", get=license_),
)


def check_privilege(ctx: Ctx, resource_: Resource) -> None:
    """Writes need the resource's privilege (account and session writes check more finely themselves)."""
    _check_write(ctx, resource_.privilege)
