"""One mock iLO (5 or 6): its state, its accounts and sessions, its counters and its injected faults."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .identity import Identity
from .messages import BASE, ILO, RedfishError
from .models import PROFILES, Profile

if TYPE_CHECKING:
    from .power import PowerHook

PRIVILEGES = (
    "LoginPriv",
    "RemoteConsolePriv",
    "VirtualMediaPriv",
    "VirtualPowerAndResetPriv",
    "iLOConfigPriv",
    "UserConfigPriv",
    "HostBIOSConfigPriv",
    "HostNICConfigPriv",
    "HostStorageConfigPriv",
    "SystemRecoveryConfigPriv",
)
ADMIN_PRIVILEGES = frozenset({"iLOConfigPriv", "UserConfigPriv", "SystemRecoveryConfigPriv"})
ROLE_PRIVILEGES: Mapping[str, frozenset[str]] = {
    "Administrator": frozenset(PRIVILEGES),
    "Operator": frozenset(PRIVILEGES) - ADMIN_PRIVILEGES,
    "ReadOnly": frozenset({"LoginPriv"}),
}
RESET_TYPES = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi", "PushPowerButton", "GracefulRestart")
RESET_TYPES_1X = ("On", "ForceOff", "ForceRestart", "Nmi", "PushPowerButton")
BOOT_TARGETS = ("None", "Cd", "Hdd", "Usb", "SDCard", "Utilities", "Diags", "BiosSetup", "Pxe", "UefiShell", "UefiHttp")
PROTOCOLS: Mapping[str, tuple[int, bool]] = {
    "HTTP": (80, True),
    "HTTPS": (443, True),
    "IPMI": (623, False),
    "KVMIP": (17990, True),
    "SNMP": (161, True),
    "SSDP": (1900, True),
    "SSH": (22, True),
    "VirtualMedia": (17988, True),
}
MODELS = ("ilo5", "ilo6")
DEFAULT_FIRMWARE: Mapping[str, str] = {"ilo5": "2.55", "ilo6": "1.68"}
LICENSES: Mapping[str, tuple[str, bool]] = {
    "advanced": ("iLO Advanced", True),
    "standard": ("iLO Standard", False),
}


def firmware_tuple(version: str) -> tuple[int, int]:
    """``"2.55"`` as ``(2, 55)``."""
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def role_of(privileges: frozenset[str]) -> str:
    """iLO derives RoleId from the privileges."""
    if privileges & ADMIN_PRIVILEGES:
        return "Administrator"
    return "ReadOnly" if privileges <= {"LoginPriv"} else "Operator"


@dataclass
class Account:
    """A local iLO user."""

    id: int
    username: str
    password: str
    privileges: frozenset[str]
    login_name: str
    service_account: bool = False
    enabled: bool = True  # iLO 6 (1.53+) can disable an account; iLO 5 cannot

    @property
    def role(self) -> str:
        """The RoleId derived from the privileges."""
        return role_of(self.privileges)


@dataclass
class Session:
    """A Redfish session created by POST to SessionService/Sessions."""

    id: str
    token: str
    account: Account
    created: float
    last_used: float


@dataclass
class Settings:
    """Per-BMC behaviour that tests and the CLI choose.

    ``model``: ``ilo5`` (ProLiant Gen10 Plus) or ``ilo6`` (Gen11). ``firmware``: empty for the model's default (iLO 5
    2.55, iLO 6 1.68). ``power_thermal``: serve the deprecated ``Chassis/1/Power`` and ``Thermal`` (False: firmware
    that serves only the DMTF PowerSubsystem, ThermalSubsystem and EnvironmentMetrics, which exist on iLO 6 only).
    """

    model: str = "ilo5"
    firmware: str = ""
    post_seconds: float = 2.0
    manager_reset_seconds: float = 5.0
    manager_reset_mode: str = "refuse"  # or "503"
    session_timeout: float = 1800.0
    max_sessions: int = 15
    license: str = "advanced"
    power_thermal: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}")
        if not self.firmware:
            self.firmware = DEFAULT_FIRMWARE[self.model]


@dataclass
class Faults:
    """Fault injection switches of one BMC (``/_mock/faults``)."""

    unavailable_count: int = 0
    unavailable_until: float = 0.0
    latency_ms: float = 0.0
    drop_count: int = 0
    lockout_until: float = 0.0
    long_post_seconds: float | None = None
    share_503: float = 0.0  # this share of the requests answers 503, spread evenly (no random draw)
    share_stall: float = 0.0  # ... and this share is held stall_ms before it is answered
    stall_ms: float = 2000.0
    failed_fans: list[int] = field(default_factory=list)  # fan numbers (1-based) that read 0 % with Health Critical
    failed_psus: list[int] = field(default_factory=list)  # power-supply bays (1-based) with no output, Health Critical
    _credit_503: float = 0.5  # error diffusion: a fault is due when its credit reaches 1 (0.5: round to nearest)
    _credit_stall: float = 0.5

    def share_fault(self) -> str | None:
        """The share faults' verdict on one request: "stall", "503" or None.

        Deterministic: after n requests each kind has been injected round(share * n) times (within one), whatever the
        timing, so a test asserts the share exactly instead of hoping a random draw lands in a window.
        """
        self._credit_stall += self.share_stall
        self._credit_503 += self.share_503
        if self._credit_stall >= 1:
            self._credit_stall -= 1
            return "stall"
        if self._credit_503 >= 1:
            self._credit_503 -= 1
            return "503"
        return None

    def describe(self, now: float) -> dict[str, Any]:
        """The switches as JSON (remaining counts and seconds)."""
        return {
            "unavailable_count": self.unavailable_count,
            "unavailable_seconds": round(max(0.0, self.unavailable_until - now), 3),
            "latency_ms": self.latency_ms,
            "drop_count": self.drop_count,
            "lockout_seconds": round(max(0.0, self.lockout_until - now), 3),
            "long_post_seconds": self.long_post_seconds,
            "share_503": self.share_503,
            "share_stall": self.share_stall,
            "stall_ms": self.stall_ms,
            "failed_fans": list(self.failed_fans),
            "failed_psus": list(self.failed_psus),
        }


@dataclass
class Counters:
    """What happened to one BMC, for assertions in tests (``/_mock/counters``)."""

    requests: Counter[str] = field(default_factory=Counter)
    resets: Counter[str] = field(default_factory=Counter)
    boot_override_history: list[dict[str, Any]] = field(default_factory=list)
    boots: int = 0
    pxe_boots: int = 0
    manager_resets: int = 0
    sessions_created: int = 0
    auth_failures: int = 0
    share_requests: int = 0  # requests judged while a share fault was set (not those refused by an iLO in reset)
    injected_503: int = 0
    injected_stalls: int = 0
    injected_drops: int = 0

    def describe(self) -> dict[str, Any]:
        """The counters as JSON."""
        return {
            "requests": dict(self.requests),
            "resets": dict(self.resets),
            "boot_override_history": list(self.boot_override_history),
            "boots": self.boots,
            "pxe_boots": self.pxe_boots,
            "manager_resets": self.manager_resets,
            "sessions_created": self.sessions_created,
            "auth_failures": self.auth_failures,
            "share_requests": self.share_requests,
            "injected_503": self.injected_503,
            "injected_stalls": self.injected_stalls,
            "injected_drops": self.injected_drops,
        }


class Bmc:
    """The state and the behaviour of one iLO (5 or 6) and its host, independent of HTTP."""

    def __init__(self, identity: Identity, settings: Settings, power: PowerHook) -> None:
        self.identity = identity
        self.settings = settings
        self.power = power
        self.address = "127.0.0.1"
        self.port = 0
        self.on_manager_reset: Callable[[Bmc, float], None] | None = None
        self.faults = Faults()
        self.counters = Counters()
        self.started = time.time()
        self.power_state = "Off"
        self.post_state = "PowerOff"
        self.boot_enabled = "Disabled"
        self.boot_target = "None"
        self.indicator_led = "Off"
        self.accounts: dict[int, Account] = {}
        self.sessions: dict[str, Session] = {}
        self.protocols = {name: {"Port": port, "ProtocolEnabled": on} for name, (port, on) in PROTOCOLS.items()}
        self.syslog: dict[str, Any] = {"RemoteSyslogEnabled": False, "RemoteSyslogServer": "", "RemoteSyslogPort": 514}
        self.pending_reset = False
        self.manager_down_until = 0.0
        self.snmp: dict[str, Any] = {
            "AlertsEnabled": True,
            "SNMPv1Enabled": True,
            "SNMPv1RequestsEnabled": True,
            "SNMPv1TrapEnabled": True,
            "SNMPv3RequestsEnabled": True,
            "SNMPv3TrapEnabled": True,
            "ReadCommunities": ["public", "", ""],
            "TrapCommunities": ["", "", "", "", "", "", "", ""],
            "Contact": "",
            "Location": "",
            "Role": "",
            "RoleDetail": "",
            "TrapSourceHostname": "Manager",
            "SNMPv3EngineID": "0x" + identity.bmc_mac.replace(":", "").upper() + "0000",
            "SNMPv3InformRetryAttempt": 2,
            "SNMPv3InformRetryIntervalSeconds": 15,
        }
        self.snmp_users: dict[int, dict[str, Any]] = {}
        self.alert_destinations: dict[int, dict[str, Any]] = {}
        self.virtual_media = {
            1: {"Image": "", "Inserted": False, "WriteProtected": True},
            2: {"Image": "", "Inserted": False, "WriteProtected": True},
        }
        self.min_password_length = 8
        self.account_policy: dict[str, Any] = {
            "EnforcePasswordComplexity": False,
            "AuthFailuresBeforeDelay": 1,
            "AuthFailureDelayTimeSeconds": 10,
            "AuthFailureLoggingThreshold": 3,
        }
        self.manager_uuid = str(uuid.uuid5(uuid.NAMESPACE_OID, identity.uuid)).upper()
        self.manager_oem: dict[str, Any] = {
            "IdleConnectionTimeoutMinutes": 30,
            "RIBCLEnabled": True,
            "WebGuiEnabled": True,
            "VirtualNICEnabled": False,
            "RequireHostAuthentication": False,
        }
        self.add_account("Administrator", identity.password, ROLE_PRIVILEGES["Administrator"], login=identity.username)
        self.add_account("_HPOneViewAdmin", secrets.token_hex(12), ROLE_PRIVILEGES["Administrator"], service=True)

    # identity and firmware
    @property
    def firmware(self) -> tuple[int, int]:
        """The emulated iLO firmware as (major, minor)."""
        return firmware_tuple(self.settings.firmware)

    @property
    def profile(self) -> Profile:
        """The generation's identity and schema versions."""
        return PROFILES[self.settings.model]

    @property
    def ilo6(self) -> bool:
        """Whether this BMC is an iLO 6 (Gen11)."""
        return self.settings.model == "ilo6"

    def at_least(self, ilo5: tuple[int, int], ilo6: tuple[int, int] = (1, 0)) -> bool:
        """Whether the firmware has a feature that came with iLO 5 ``ilo5`` or iLO 6 ``ilo6`` (default: every iLO 6)."""
        return self.firmware >= (ilo6 if self.ilo6 else ilo5)

    @property
    def reset_types(self) -> tuple[str, ...]:
        """ComputerSystem.Reset's allowable values for this firmware."""
        return RESET_TYPES if self.at_least((2, 0)) else RESET_TYPES_1X

    @property
    def license(self) -> tuple[str, bool]:
        """(licence name, whether it includes remote syslog)."""
        return LICENSES[self.settings.license]

    # accounts and authentication
    def add_account(
        self, username: str, password: str, privileges: frozenset[str], login: str | None = None, service: bool = False
    ) -> Account:
        """Create a local user in the first free slot."""
        if any(a.username == username for a in self.accounts.values()):
            raise RedfishError(400, f"{ILO}.UserAlreadyExist")
        slot = next(n for n in range(1, len(self.accounts) + 2) if n not in self.accounts)
        account = Account(slot, username, password, privileges, login or username, service)
        self.accounts[slot] = account
        return account

    def check_password(self, password: str) -> None:
        """iLO's password length rule (AccountService MinPasswordLength, at most 39)."""
        if not self.min_password_length <= len(password) <= 39:
            raise RedfishError(400, f"{ILO}.InvalidPasswordLength", self.min_password_length, 39)

    def login(self, username: str, password: str) -> Account:
        """Check credentials (Basic auth or a session login); failures count and honour the lockout fault."""
        now = time.monotonic()
        if now < self.faults.lockout_until:
            self.counters.auth_failures += 1
            raise RedfishError(401, f"{ILO}.LoginAttemptDelayed", int(self.faults.lockout_until - now) + 1)
        for account in self.accounts.values():
            if account.username == username and hmac.compare_digest(account.password, password):
                if not account.enabled:
                    break
                return account
        self.counters.auth_failures += 1
        raise RedfishError(401, f"{ILO}.UnauthorizedLoginAttempt")

    def authenticate(self, token: str | None, authorization: str | None) -> Session | Account:
        """The principal of a request: a live session, or an account via Basic auth; else iLO's 401."""
        now = time.monotonic()
        if token:
            session = self.sessions.get(token)
            if session is not None and now - session.last_used > self.settings.session_timeout:
                del self.sessions[token]
                session = None
            if session is not None:
                session.last_used = now
                return session
        elif authorization and authorization[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RedfishError(401, f"{BASE}.NoValidSession") from None
            return self.login(user, password)
        raise RedfishError(401, f"{BASE}.NoValidSession")

    def open_session(self, username: str, password: str) -> Session:
        """A new session, within the session cap."""
        account = self.login(username, password)
        now = time.monotonic()
        for token in [t for t, s in self.sessions.items() if now - s.last_used > self.settings.session_timeout]:
            del self.sessions[token]
        if len(self.sessions) >= self.settings.max_sessions:
            raise RedfishError(503, f"{BASE}.SessionLimitExceeded")
        prefix = "".join(c for c in account.username.lower() if c.isascii() and c.isalnum())
        session_id = f"{prefix}00000000{secrets.token_hex(8)}"
        session = Session(session_id, secrets.token_hex(16), account, now, now)
        self.sessions[session.token] = session
        self.counters.sessions_created += 1
        return session

    def find_session(self, session_id: str) -> Session | None:
        """A session by its id (as in its URI, case-insensitive)."""
        return next((s for s in self.sessions.values() if s.id == session_id.lower()), None)

    # host power and boot
    @property
    def next_boot_target(self) -> str:
        """The device the host boots from next (the override if one is set)."""
        return self.boot_target if self.boot_enabled != "Disabled" and self.boot_target != "None" else "Hdd"

    def host_powered_on(self) -> None:
        """Called by the power hook: the host is on and in POST."""
        self.power_state = "On"
        self.post_state = "InPost"

    def host_booted(self) -> str:
        """Called by the power hook at the end of POST: consume a one-time override, count, return the boot device."""
        target = self.next_boot_target
        self.post_state = "FinishedPost"
        self.counters.boots += 1
        if target == "Pxe":
            self.counters.pxe_boots += 1
        if self.boot_enabled == "Once":
            self.boot_enabled, self.boot_target = "Disabled", "None"
        return target

    def host_powered_off(self) -> None:
        """Called by the power hook: the host is off."""
        self.power_state = "Off"
        self.post_state = "PowerOff"

    @property
    def post_seconds(self) -> float:
        """How long the next POST takes (the long-POST fault wins)."""
        return (
            self.faults.long_post_seconds if self.faults.long_post_seconds is not None else self.settings.post_seconds
        )

    def set_boot(self, enabled: str | None, target: str | None) -> None:
        """PATCH of Systems/1 Boot, with iLO's rule against changes during POST."""
        if self.post_state == "InPost":
            raise RedfishError(400, f"{ILO}.UnableToModifyDuringSystemPOST")
        if enabled is not None:
            self.boot_enabled = enabled
        if target is not None:
            self.boot_target = target
        self.counters.boot_override_history.append(
            {
                "time": round(time.time(), 3),
                "BootSourceOverrideEnabled": self.boot_enabled,
                "BootSourceOverrideTarget": self.boot_target,
            }
        )

    async def reset(self, reset_type: str) -> None:
        """ComputerSystem.Reset with iLO 5's state checks, carried out by the power hook."""
        if reset_type not in self.reset_types:
            raise RedfishError(400, f"{BASE}.PropertyValueNotInList", reset_type, "ResetType")
        on = self.power_state == "On"
        if reset_type == "On" and on:
            raise RedfishError(400, f"{ILO}.InvalidOperationForSystemState", "Power is on")
        if reset_type not in ("On", "PushPowerButton") and not on:
            raise RedfishError(400, f"{ILO}.InvalidOperationForSystemState", "Power is off")
        self.counters.resets[reset_type] += 1
        if reset_type == "On" or (reset_type == "PushPowerButton" and not on):
            await self.power.power_on(self)
        elif reset_type in ("ForceOff", "GracefulShutdown", "PushPowerButton"):
            await self.power.power_off(self, graceful=reset_type != "ForceOff")
        elif reset_type in ("ForceRestart", "GracefulRestart"):
            await self.power.restart(self)

    # manager
    def manager_down(self, now: float) -> bool:
        """Whether the iLO is still rebooting."""
        return now < self.manager_down_until

    def reset_manager(self) -> None:
        """Manager.Reset: all sessions dropped, pending settings applied, unreachable for a while."""
        self.counters.manager_resets += 1
        self.sessions.clear()
        self.pending_reset = False
        self.manager_down_until = time.monotonic() + self.settings.manager_reset_seconds
        if self.on_manager_reset is not None:
            self.on_manager_reset(self, self.settings.manager_reset_seconds)

    def describe(self) -> dict[str, Any]:
        """The effective state, for tests (``/_mock/state``); includes passwords: test use only."""
        now = time.monotonic()
        return {
            "name": self.identity.name,
            "address": self.address,
            "port": self.port,
            "PowerState": self.power_state,
            "PostState": self.post_state,
            "Boot": {"BootSourceOverrideEnabled": self.boot_enabled, "BootSourceOverrideTarget": self.boot_target},
            "IndicatorLED": self.indicator_led,
            "Accounts": [
                {
                    "Id": a.id,
                    "UserName": a.username,
                    "Password": a.password,
                    "RoleId": a.role,
                    "ServiceAccount": a.service_account,
                    "Enabled": a.enabled,
                }
                for a in self.accounts.values()
            ],
            "Sessions": len(self.sessions),
            "NetworkProtocol": {**self.protocols, "Oem": {"Hpe": dict(self.syslog)}},
            "PendingReset": self.pending_reset,
            "ManagerDownSeconds": round(max(0.0, self.manager_down_until - now), 3),
            "SnmpService": dict(self.snmp),
            "SNMPUsers": {
                str(k): {n: v for n, v in u.items() if "Passphrase" not in n} for k, u in self.snmp_users.items()
            },
            "SNMPAlertDestinations": {str(k): dict(v) for k, v in self.alert_destinations.items()},
            "VirtualMedia": {str(k): dict(v) for k, v in self.virtual_media.items()},
            "Settings": vars(self.settings).copy(),
            "Faults": self.faults.describe(now),
        }
