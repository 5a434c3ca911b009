"""bm-lab-e2e: the whole pipeline with real network plumbing and QEMU servers, from the BMC's DHCP lease to `monitored`.

Everything but the BMC silicon is real, inside network namespaces this run creates (all removed at the end):

    <p>-bmcN    the BMC's own network stack: busybox udhcpc asks for a lease with the BMC's MAC
    <p>-prov    the provisioning network's server: ISC dhcpd (its `on commit` runs the project's DHCP hook) or, with
                `--dhcp kea`, Kea (kea-dhcp4; its run_script hook library runs the hook's Kea entry point), the HTTP
                server for boot.ipxe, the per-device iPXE scripts and the validation image; bridge `oob` (BMCs),
                links data1/data2 to the ToRs. Sockets opened inside it relay to the host's loopback: Redis (for the
                hook) and the rulebook's validation webhook (for the image's report)
    <p>-tor1/2  the switches: a bridge, an uplink to prov, one tap per server NIC named EthernetN, lldpd announcing
                system name tor1/tor2 and port ids EthernetN
    host        NetBox and Redis of the local stack, `ansible-rulebook` with every stage, the mock iLOs (loopback),
                QEMU (its NICs are taps opened inside the tor namespaces: cabled to their switch ports)

Server i's eno1 is cabled to tor1 Ethernet<i+1>, eno2 to tor2 Ethernet<i+1>; the VM PXE-boots on eno1 (iPXE ROM ->
the DHCP server -> boot.ipxe -> `${uuid}.ipxe` rendered by provisioning -> kernel + initrd over HTTP). The mock
iLOs cycle over the generations of `--model` (default ilo5,ilo6: iLO 5 in a ProLiant DL360 Gen10 Plus, iLO 6 in a
Gen11, as bm-lab-sim); each VM's SMBIOS system identity (manufacturer, product, SKU, serial, UUID) and NIC MACs are
its iLO's, so what the validation image reads with dmidecode matches its BMC, as on real hardware. The mock's power
actions and one-time PXE boot drive the VM over QMP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pynetbox
import redis

from bm_lab import netbox_seed, sim
from bm_lab.netns import Netns, Relays, in_netns
from bm_mock_ilo.bmc import Bmc, Settings
from bm_mock_ilo.cli import DEFAULT_STATE
from bm_mock_ilo.fleet import Fleet
from bm_mock_ilo.models import PROFILES
from bm_mock_ilo.power import QmpPower
from bm_mock_ilo.testing import BmcInfo
from bm_mock_ilo.tlscert import ensure_certificate, server_context

log = logging.getLogger("bm-lab")
ROOT = sim.ROOT
HOOK_CONF = ROOT / "collections" / "ansible_collections" / "bm" / "lifecycle" / "files" / "dhcpd-hook.conf"
HOOK_INSTALLED = "/usr/share/ansible/collections/ansible_collections/bm/lifecycle/files/dhcp_hook.py"
KEA_STANZA = HOOK_CONF.with_name("kea-hook.json")  # the hook-library stanza install_dhcp_hook adds to kea-dhcp4.conf
KEA_HOOK = HOOK_CONF.with_name("kea-hook.sh")
KEA_DHCP4 = "/usr/sbin/kea-dhcp4"
DHCP_LOG = {"isc": "dhcpd.log", "kea": "kea-dhcp4.log"}
OVERLAY = ROOT / "iso" / "lab" / "e2e-overlay"
UDHCPC_SCRIPT = ROOT / "iso" / "lab" / "udhcpc.script"
NET = "10.77"  # 10.77.0.0/24 OOB (BMCs), 10.77.1.0/24 behind tor1, 10.77.2.0/24 behind tor2: only inside our namespaces
HTTP_PORT = 8080
BMC_FIRST = 100  # BMC i asks for NET.0.(100 + i), the first addresses of the OOB pool
WEBHOOK_PORT = 5000
MANUFACTURER = "HPE"  # what every mock iLO's Systems/1 and Chassis/1 say (bm_mock_ilo.resources), either generation
TOOLS = (
    "/usr/sbin/dhcpd",
    KEA_DHCP4,
    "/usr/sbin/lldpd",
    "/usr/sbin/lldpcli",
    "/usr/sbin/ip",
    "/bin/busybox",
    "/usr/bin/python3",
)
EVENT_ORDER = (
    "dhcp_lease",
    "device_discovered",
    "pxe_boot_initiated",
    "validation_report",
    "validation_completed",
    "hardening_completed",
)


class LabQmpPower(QmpPower):
    """QmpPower that also starts a VM the guest powered off (QEMU `-no-shutdown` keeps it, state `shutdown`), and
    tells the iLO when the host powered itself off (the validation image does), as a real iLO sees it."""

    async def power_on(self, bmc: Bmc) -> None:
        """Choose the boot device, then reset and start the VM from whatever state it is in."""
        device = "n" if bmc.next_boot_target == "Pxe" else "c"
        (status,) = await self._execute(bmc, ("query-status", None))
        boot = ("human-monitor-command", {"command-line": f"boot_set {device}"})
        if status.get("running"):
            await self._execute(bmc, boot, ("system_reset", None))
        elif status.get("status") in ("shutdown", "guest-panicked", "internal-error"):
            await self._execute(bmc, boot, ("system_reset", None), ("cont", None))
        else:
            await self._execute(bmc, boot, ("cont", None))
        bmc.host_powered_on()
        bmc.host_booted()

    async def watch(self, bmc: Bmc, interval: float = 2.0) -> None:
        """Follow the VM: when the guest powered itself off, the iLO shows the host Off."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(OSError, TimeoutError, ValueError, RuntimeError):
                (status,) = await self._execute(bmc, ("query-status", None))
                if status.get("status") == "shutdown" and bmc.power_state == "On":
                    log.info("%s: the host powered itself off", bmc.identity.name)
                    bmc.host_powered_off()


@dataclass
class LabServer:
    """One server of the lab: its BMC, its VM and the evidence collected about it."""

    sim: sim.SimServer
    index: int
    qmp: Path
    serial_log: Path
    cabling: list[tuple[str, str, str, str]] = field(default_factory=list)  # (nic, mac, switch, port)
    lease_wall: float = 0.0

    @property
    def name(self) -> str:
        return self.sim.name


@dataclass
class LabResult:
    """What a lab run produced, for the test and the printed report."""

    servers: list[LabServer]
    rows: list[dict[str, Any]]
    counters: list[dict[str, Any]]
    states: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    workdir: Path
    accel: str
    accel_reason: str
    image: Path
    netbox: dict[str, Any]
    tor_neighbors: dict[str, Any]
    wall_s: float
    phases: dict[str, float]
    dhcp: str = "isc"

    @property
    def monitored(self) -> int:
        return sum(row["state"] == "monitored" for row in self.rows)

    def log(self, name: str) -> str:
        path = self.workdir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def dhcp_log(self) -> str:
        """The DHCP server's log (its own lines and the hook's: it logs to stderr where there is no syslog)."""
        return self.log(DHCP_LOG[self.dhcp])


# --- preparation ------------------------------------------------------------------------------------------------
def missing_tools() -> list[str]:
    """What this machine lacks to run the lab (root, packages of requirements/apt.txt)."""
    missing = [] if os.geteuid() == 0 else ["root (network namespaces)"]
    missing += [t for t in TOOLS if not Path(t).exists()]
    with contextlib.suppress(OSError, ValueError, KeyError):
        library = json.loads(KEA_STANZA.read_text())["library"]
        if not Path(library).exists():
            missing.append(f"{library} (Kea's run_script hook library)")
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86_64")
    if not Path("/dev/net/tun").exists():
        missing.append("/dev/net/tun")
    if not list(Path("/boot").glob("vmlinuz-*")):
        missing.append("/boot/vmlinuz-* (linux-image-amd64)")
    return missing


def build_image(overlay: Path | None = None, ca: str | None = None) -> Path:
    """The lab validation image with the onboard-NIC naming overlay and, with `ca`, the webhook's CA at
    /etc/bm/ca.pem (`bm.ca=`), the overlay then made in `overlay` (cached by iso/lab/build.sh: one image per CA)."""
    if ca and overlay:
        shutil.copytree(OVERLAY, overlay, dirs_exist_ok=True)
        shutil.copyfile(ca, overlay / "etc" / "bm" / "ca.pem")
    env = dict(os.environ, BM_IMAGE_OVERLAY=str(overlay if ca and overlay else OVERLAY))
    done = subprocess.run(  # noqa: S603
        [str(ROOT / "iso" / "lab" / "build.sh")], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"iso/lab/build.sh failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def detect_accel(image: Path, logdir: Path, forced: str | None) -> tuple[str, str]:
    """KVM only where it really boots a kernel (a nested paravirtual /dev/kvm may not): try it briefly, else TCG."""
    if forced:
        return forced, f"chosen with --accel {forced}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    started = time.monotonic()
    command = [
        "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-display", "none", "-serial", "stdio",
        "-no-reboot", "-kernel", str(image / "vmlinuz"), "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)  # noqa: S603
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        partial = [p.decode(errors="replace") if isinstance(p, bytes) else (p or "") for p in (exc.stdout, exc.stderr)]
        output = "".join(partial) + " (stalled for 15 s)"
    (logdir / "kvm-probe.log").write_text(str(output))
    if "Kernel panic" in str(output) or "VFS: Unable to mount root" in str(output):
        return "kvm", f"KVM booted a kernel in {time.monotonic() - started:.1f} s"
    last = [line for line in str(output).splitlines() if line.strip()][-1:] or ["no output"]
    return "tcg", f"KVM did not boot a kernel within 15 s ({last[0][:120]}): TCG"


# --- the mock iLO fleet, driving the VMs ------------------------------------------------------------------------
class NetnsFleet(Fleet):
    """A fleet whose BMC i listens inside namespace `namespaces[i]` (its own network stack, on its leased address)."""

    def __init__(self, count: int, namespaces: list[str], **kwargs: Any) -> None:
        super().__init__(count, **kwargs)
        self.namespaces = namespaces

    async def _open(self, bmc: Bmc) -> None:
        fd = os.open(f"/run/netns/{self.namespaces[bmc.identity.index]}", os.O_RDONLY)
        try:
            os.setns(fd, os.CLONE_NEWNET)  # this event loop thread only: the BMC's socket is made in there
        finally:
            os.close(fd)
        await super()._open(bmc)


class Ilos:
    """The mock iLOs of the lab in an event loop thread; BMC i on BMC_FIRST + i:443 inside its own namespace, of the
    generation `models[i % len(models)]`, its power hook driving VM i over QMP. Counters and state are read in
    process (the host cannot reach the BMCs)."""

    def __init__(
        self, count: int, seed: str, password: str, qmp_template: str, namespaces: list[str], *, models: list[str]
    ) -> None:
        addresses = [f"{NET}.0.{BMC_FIRST + i}" for i in range(count)]
        cert, key = ensure_certificate(DEFAULT_STATE / f"{addresses[0]}+{count}", addresses)
        self.power = LabQmpPower(qmp_template, timeout=10.0)
        self.fleet = NetnsFleet(
            count,
            namespaces,
            seed=seed,
            first_address=addresses[0],
            base_port=443,
            settings=[Settings(model=model, manager_reset_seconds=2.0) for model in models],  # cycled, as in sim
            power=self.power,
            ssl_context=server_context(cert, key),
            password=password,
        )
        self.bmcs = [BmcInfo.from_record(r) for r in self.fleet.inventory()]
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.watchers: list[Any] = []

    def start(self) -> None:
        """Listen (the namespaces allow binding the address before the lease configures it) and watch the VMs."""
        self.thread = threading.Thread(target=self.loop.run_forever, name="bm-lab-ilo", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fleet.start(), self.loop).result(30)
        self.watchers = [asyncio.run_coroutine_threadsafe(self.power.watch(b), self.loop) for b in self.fleet.bmcs]

    def call(self, index: int, what: str) -> dict[str, Any]:
        """`counters` or `state` of BMC `index`, read inside the loop."""

        async def read() -> dict[str, Any]:
            bmc = self.fleet.bmcs[index]
            return bmc.counters.describe() if what == "counters" else bmc.describe()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)

    def stop(self) -> None:
        """Stop serving and the loop."""
        if self.thread is None:
            return
        for watcher in self.watchers:
            watcher.cancel()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.fleet.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.thread = None


def smbios_system(bmc: BmcInfo) -> dict[str, str]:
    """SMBIOS type 1 (System Information) of the server behind `bmc`: what its iLO says of it (manufacturer, product
    and SKU of its generation, bm_mock_ilo.models; its serial and UUID), as the firmware of a real server does."""
    profile = PROFILES[bmc.model]
    return {
        "manufacturer": MANUFACTURER,
        "product": profile.product,
        "sku": profile.sku,
        "family": "ProLiant",
        "serial": bmc.serial,
        "uuid": bmc.uuid,
    }


def smbios_option(fields: dict[str, str]) -> str:
    """QEMU's `-smbios type=1,...` value (a comma inside a value is doubled, QEMU's escape)."""
    return ",".join(["type=1", *(f"{key}={value.replace(',', ',,')}" for key, value in fields.items())])


# --- configuration files ----------------------------------------------------------------------------------------
def dhcpd_conf(hook_conf: Path) -> str:
    """dhcpd.conf: the BMC network and the two data networks; iPXE gets boot.ipxe over HTTP."""
    return f"""# bm-lab-e2e: generated
authoritative;
ddns-update-style none;
default-lease-time 600;
max-lease-time 1200;
log-facility local7;
subnet {NET}.0.0 netmask 255.255.255.0 {{
  range {NET}.0.100 {NET}.0.199;
  option routers {NET}.0.1;
}}
subnet {NET}.1.0 netmask 255.255.255.0 {{
  range {NET}.1.100 {NET}.1.199;
  option routers {NET}.1.1;
  next-server {NET}.1.1;
  if exists user-class and option user-class = "iPXE" {{
    filename "http://{NET}.1.1:{HTTP_PORT}/boot.ipxe";
  }}
}}
subnet {NET}.2.0 netmask 255.255.255.0 {{
  range {NET}.2.100 {NET}.2.199;
  option routers {NET}.2.1;
}}
include "{hook_conf}";
"""


def hook_conf() -> str:
    """The project's `on commit` snippet, pointing at this checkout's hook."""
    text = HOOK_CONF.read_text()
    if HOOK_INSTALLED not in text:
        raise RuntimeError(f"{HOOK_CONF} no longer names {HOOK_INSTALLED}: update bm_lab.lab")
    return text.replace(HOOK_INSTALLED, str(sim.HOOK))


def kea_hook_wrapper(settings: Path) -> str:
    """What the lab's Kea runs: the shipped kea-hook.sh with the lab's settings file. Kea gives a script only its own
    variables, so the installed hook reads /etc/bm-lifecycle/dhcp-hook.conf; the lab must not write /etc."""
    return f'#!/bin/sh\nexport BM_HOOK_CONFIG="{settings}"\nexec "{KEA_HOOK}" "$@"\n'


def kea_conf(run_dir: Path, hook: Path) -> dict[str, Any]:
    """kea-dhcp4's configuration: the networks and options of `dhcpd_conf`, the project's hook-library stanza (its
    script pointed at `hook`), leases in `run_dir`, the log on stdout."""
    stanza = json.loads(KEA_STANZA.read_text())
    stanza["parameters"]["name"] = str(hook)
    ipxe = f"http://{NET}.1.1:{HTTP_PORT}/boot.ipxe"
    subnets: list[dict[str, Any]] = [
        {
            "id": n + 1,
            "subnet": f"{NET}.{n}.0/24",
            "interface": iface,
            "pools": [{"pool": f"{NET}.{n}.100 - {NET}.{n}.199"}],
            "option-data": [{"name": "routers", "data": f"{NET}.{n}.1"}],
        }
        for n, iface in enumerate(("oob", "data1", "data2"))
    ]
    subnets[1]["next-server"] = f"{NET}.1.1"
    return {
        "Dhcp4": {
            "interfaces-config": {"interfaces": ["oob", "data1", "data2"], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "name": str(run_dir / "kea-leases4.csv"), "lfc-interval": 0},
            "authoritative": True,
            "valid-lifetime": 600,
            "max-valid-lifetime": 1200,
            # iPXE says so in its user class (option 77): it gets the generic boot script over HTTP
            "client-classes": [
                {"name": "ipxe", "test": "substring(option[77].hex,0,4) == 'iPXE'", "boot-file-name": ipxe}
            ],
            "subnet4": subnets,
            "hooks-libraries": [stanza],
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}],
        }
    }


BOOT_IPXE = """#!ipxe
# bm-lab-e2e: the generic PXE entry; provisioning renders pxe/<uuid|serial|device>.ipxe for each server it boots
echo bm-lab: ${net0/mac} uuid ${uuid} serial ${serial}
chain --autofree pxe/${uuid}.ipxe || chain --autofree pxe/${serial}.ipxe || goto none
:none
echo bm-lab: no boot script for this server; powering off
sleep 5
poweroff
"""


def tor_conf(name: str) -> str:
    """lldpd of a ToR: its system name, port ids = interface names, a frame every second."""
    return "\n".join(
        [
            f"configure system hostname {name}",
            'configure system description "bm-lab-e2e top-of-rack switch (lldpd)"',
            "configure lldp portidsubtype ifname",
            "configure lldp tx-interval 1",
            "",
        ]
    )


# --- the lab ----------------------------------------------------------------------------------------------------
class Lab:
    """Builds the networks, servers and services of one run; `close()` removes all of it."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.run_dir = workdir / "run"
        tag = f"{os.getpid() % 100000:x}"
        self.net = Netns(f"bml{tag}", self.logs)
        (self.run_dir / "owner").write_text(self.net.prefix + "\n")  # scripts/lab-e2e.sh's trap removes bml<tag>-*
        self.relays: Relays | None = None
        self.prov = ""
        self.tors: list[str] = []
        self.qemus: list[subprocess.Popen[bytes]] = []
        self.heard: dict[str, dict[str, set[str]]] = {}

    def network(self, servers: list[LabServer]) -> None:
        """Namespaces, links, bridges, taps (fds kept for QEMU), addresses."""
        net = self.net
        self.prov = net.add("prov")
        net.bridge(self.prov, "oob", f"{NET}.0.1/24")
        for s, switch in enumerate(netbox_seed.SWITCHES, start=1):
            tor = net.add(switch)
            self.tors.append(tor)
            net.bridge(tor, "br0")
            net.veth(tor, "uplink", self.prov, f"data{s}")
            net.ip(tor, "link", "set", "uplink", "master", "br0")
            net.ip(self.prov, "addr", "add", f"{NET}.{s}.1/24", "dev", f"data{s}")
        for server in servers:
            bmc = net.add(f"bmc{server.index + 1}")
            net.veth(bmc, "eth0", self.prov, f"bmc{server.index + 1}", mac_a=server.sim.bmc.bmc_mac)
            net.ip(self.prov, "link", "set", f"bmc{server.index + 1}", "master", "oob")
            # the mock iLO listens on its address before its lease configures it, as the real one comes up with it
            net.run(bmc, ["/usr/sbin/sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"], timeout=10)

    def bmc_ns(self, index: int) -> str:
        """The namespace of BMC `index`."""
        return f"{self.net.prefix}-bmc{index + 1}"

    def services(self, redis_port: int, netbox_port: int) -> None:
        """Relays, the DHCP server with the hook, the HTTP server, lldpd on both ToRs."""
        self.relays = Relays()
        for port in (redis_port, netbox_port):  # the host's stack, at the same addresses inside prov
            self.relays.add(self.prov, ("127.0.0.1", port), ("127.0.0.1", port))
        # the webhook listens on prov's loopback (rulebook: host 127.0.0.1); the servers reach it on the PXE network
        self.relays.add(self.prov, (f"{NET}.1.1", WEBHOOK_PORT), ("127.0.0.1", WEBHOOK_PORT), target_ns=self.prov)

        if self.args.dhcp == "kea":
            self.start_kea()
        else:
            self.start_dhcpd()

        http = self.workdir / "http"
        http.mkdir(exist_ok=True)
        (http / "boot.ipxe").write_text(BOOT_IPXE)
        for link, target in (("pxe", self.workdir / "pxe"), ("image", Path(self.args.image))):
            path = http / link
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(target)
        self.net.spawn(
            self.prov,
            ["/usr/bin/python3", "-m", "http.server", str(HTTP_PORT), "--bind", f"{NET}.1.1", "--directory", str(http)],
            "http.log",
        )
        for tor, switch in zip(self.tors, netbox_seed.SWITCHES, strict=True):
            conf_path = self.run_dir / f"{switch}.conf"
            conf_path.write_text(tor_conf(switch))
            argv = ["/usr/sbin/lldpd", "-d", "-u", str(self.run_dir / f"{switch}.sock"), "-O", str(conf_path),
                    "-I", "Ethernet*"]  # fmt: skip
            self.net.spawn(tor, argv, f"lldpd-{switch}.log")
        self.wait_listening(self.prov, f"{NET}.1.1", HTTP_PORT, "the PXE HTTP server")
        started = {"isc": "Server starting service", "kea": "DHCP4_STARTED"}[self.args.dhcp]
        log_path = self.logs / DHCP_LOG[self.args.dhcp]
        deadline = time.monotonic() + 15
        while started not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the DHCP server did not start: {log_path.read_text()[-1500:]}")
            time.sleep(0.1)

    def hook_env(self) -> dict[str, str]:
        """The hook's settings: the stack's Redis (through prov's relay), a spool in the work dir."""
        env = {
            "BM_REDIS_URL": os.environ["BM_REDIS_URL"],
            "BM_HOOK_SPOOL": str(self.workdir / "hook-spool"),
        }
        if os.environ.get("BM_REDIS_PASSWORD"):
            env["BM_REDIS_PASSWORD"] = os.environ["BM_REDIS_PASSWORD"]
        return env

    def start_dhcpd(self) -> None:
        """ISC dhcpd with the project's `on commit` snippet; the hook's settings in dhcpd's environment."""
        conf = self.run_dir / "dhcpd.conf"
        (self.run_dir / "dhcpd-hook.conf").write_text(hook_conf())
        conf.write_text(dhcpd_conf(self.run_dir / "dhcpd-hook.conf"))
        leases = self.run_dir / "dhcpd.leases"
        leases.write_text("")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BM_HOOK_CONFIG": str(self.run_dir / "no-hook-config"),
               **self.hook_env()}  # fmt: skip
        argv = ["/usr/sbin/dhcpd", "-4", "-f", "-d", "-cf", str(conf), "-lf", str(leases),
                "-pf", str(self.run_dir / "dhcpd.pid"), "oob", "data1", "data2"]  # fmt: skip
        self.net.spawn(self.prov, argv, DHCP_LOG["isc"], env=env)

    def start_kea(self) -> None:
        """kea-dhcp4 with the project's hook-library stanza. Kea hands its script only its own variables: the hook
        reads its settings from a file (0600, it may hold the Redis password), as installed."""
        settings = self.run_dir / "dhcp-hook.conf"
        settings.touch(mode=0o600)
        settings.write_text("".join(f"{k}={v}\n" for k, v in self.hook_env().items()))
        hook = self.run_dir / "kea-hook"
        hook.write_text(kea_hook_wrapper(settings))
        hook.chmod(0o755)
        conf = self.run_dir / "kea-dhcp4.conf"
        conf.write_text(json.dumps(kea_conf(self.run_dir, hook), indent=2))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KEA_PIDFILE_DIR": str(self.run_dir),
               "KEA_LOCKFILE_DIR": str(self.run_dir)}  # fmt: skip
        self.net.spawn(self.prov, [KEA_DHCP4, "-c", str(conf)], DHCP_LOG["kea"], env=env)

    @staticmethod
    def wait_listening(
        ns: str, host: str, port: int, what: str, *, timeout: float = 15, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        """Bounded wait until host:port inside `ns` accepts connections (and `proc`, if given, still runs)."""
        deadline = time.monotonic() + timeout

        def probe() -> bool:
            with socket.socket() as sock:
                sock.settimeout(1)
                return sock.connect_ex((host, port)) == 0

        while not in_netns(ns, probe):
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"{what} does not listen on {host}:{port} in {ns}")
            time.sleep(0.3)

    def vm(self, server: LabServer, accel: str) -> None:
        """The server's VM, paused until its iLO powers it on; NICs are taps on its ToR ports."""
        bmc = server.sim.bmc
        fds = []
        devices: list[str] = []
        port = f"Ethernet{server.index + 1}"
        for n, (tor, switch, mac) in enumerate(zip(self.tors, netbox_seed.SWITCHES, bmc.nic_macs, strict=True)):
            fd = self.net.tap(tor, port, bridge="br0")
            fds.append(fd)
            rom = "" if n == 0 else ",romfile="  # QEMU's iPXE ROM on eno1 only: the PXE NIC
            nic = f"virtio-net-pci,netdev=n{n},id=nic{n},mac={mac},acpi-index={n + 1}{rom}"
            devices += ["-netdev", f"tap,id=n{n},fd={fd}", "-device", nic]
            server.cabling.append((f"eno{n + 1}", mac, switch, port))
        argv = [
            "qemu-system-x86_64", "-name", server.name, "-accel", accel, *(["-cpu", "host"] if accel == "kvm" else []),
            "-machine", "pc", "-m", str(self.args.memory), "-smp", "1", "-S", "-no-shutdown",
            "-display", "none", "-vga", "std", "-serial", f"file:{server.serial_log}",
            "-qmp", f"unix:{server.qmp},server=on,wait=off", "-pidfile", str(self.run_dir / f"qemu-{server.name}.pid"),
            "-smbios", smbios_option(smbios_system(bmc)),
            "-boot", "menu=off", *devices,
        ]  # fmt: skip
        proc = self.net.spawn(None, argv, f"qemu-{server.name}.log", pass_fds=tuple(fds))
        self.qemus.append(proc)
        deadline = time.monotonic() + 20
        while not server.qmp.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"QEMU did not start: {(self.logs / f'qemu-{server.name}.log').read_text()[-1500:]}")
            time.sleep(0.1)

    def bmc_lease(self, server: LabServer) -> None:
        """The BMC asks for its lease with its own MAC (busybox udhcpc); the DHCP server's hook starts the pipeline."""
        ns = f"{self.net.prefix}-bmc{server.index + 1}"
        argv = ["/bin/busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "2", "-r",
                server.sim.bmc.address, "-s", str(UDHCPC_SCRIPT), "-x", f"hostname:ilo-{server.name}"]  # fmt: skip
        server.lease_wall = time.time()
        output = self.net.run(ns, argv, timeout=30)
        (self.logs / f"udhcpc-{server.name}.log").write_text(output)
        match = re.search(r"lease of (\S+) obtained", output)
        server.sim.lease_ip = match.group(1) if match else ""

    def watch_tors(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Until `stop`: what each ToR's lldpd hears on its ports, into `heard` as {switch: {port: {key=value}}}.
        A server's lldpd announces itself only while the image runs (and says goodbye, TTL 0, when it stops)."""
        while not stop.wait(interval):
            for tor, switch in zip(self.tors, netbox_seed.SWITCHES, strict=True):
                sock = str(self.run_dir / f"{switch}.sock")
                with contextlib.suppress(Exception):
                    text = self.net.run(tor, ["/usr/sbin/lldpcli", "-u", sock, "-f", "keyvalue", "show", "neighbors"],
                                        timeout=10)  # fmt: skip
                    for line in text.splitlines():
                        key, _, value = line.partition("=")
                        parts = key.split(".")
                        if len(parts) > 2 and parts[0] == "lldp":
                            self.heard.setdefault(switch, {}).setdefault(parts[1], set()).add(f"{key}={value}")

    def screendumps(self, servers: list[LabServer]) -> None:
        """On failure: the VGA screen of every VM (iPXE and the kernel print there)."""
        for server in servers:
            with contextlib.suppress(Exception):
                qmp = QmpPower(str(server.qmp))
                target = self.logs / f"screen-{server.name}.ppm"

                async def dump(q: QmpPower = qmp, t: Path = target) -> None:
                    async with asyncio.timeout(5):
                        reader, writer = await asyncio.open_unix_connection(str(q.socket_template))
                        await reader.readline()
                        for cmd in ({"execute": "qmp_capabilities"},
                                    {"execute": "screendump", "arguments": {"filename": str(t)}}):  # fmt: skip
                            writer.write(json.dumps(cmd).encode() + b"\n")
                            await writer.drain()
                            await reader.readline()
                        writer.close()

                asyncio.run(dump())

    def close(self) -> None:
        """Everything this run started, by PID; then the namespaces."""
        if self.relays is not None:
            self.relays.close()
        self.net.close()


def read_events(client: redis.Redis, servers: list[LabServer], since: float) -> dict[str, list[dict[str, Any]]]:
    """Per server: its events on the bus since `since` (dhcp_lease by MAC, the others by device id), in stream order."""
    out: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    by_id = {s.sim.device_id: s.name for s in servers}
    by_mac = {s.sim.bmc.bmc_mac.lower(): s.name for s in servers}
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(match="bm:events:*"))
    for key in keys:
        if client.type(key) not in (b"stream", "stream"):
            continue
        for entry_id, fields in client.xrange(key, f"{int(since * 1000)}-0", "+") or []:
            raw = (fields or {}).get(b"envelope") or (fields or {}).get("envelope")
            if raw is None:
                continue
            envelope = json.loads(raw)
            device = envelope.get("device") or {}
            name = by_id.get(int(device.get("id") or 0)) if isinstance(device, dict) else None
            data = envelope.get("data") or {}
            if name is None and envelope.get("event_type") == "dhcp_lease":
                name = by_mac.get(str(data.get("mac", "")).lower())
                name = name or next((s.name for s in servers if data.get("mac") in s.sim.bmc.nic_macs), None)
            if name is not None:
                envelope["_stream_id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                out[name].append(envelope)
    for events in out.values():
        events.sort(key=lambda e: (int(e["_stream_id"].split("-")[0]), e["timestamp"]))
    return out


def netbox_facts(api: pynetbox.api, servers: list[LabServer]) -> dict[str, Any]:
    """Per server: model, serial, oob IP, interfaces with MACs and their cable peers, journal entries."""
    out: dict[str, Any] = {}
    for server in servers:
        device = api.dcim.devices.get(server.sim.device_id)
        interfaces = {}
        for iface in api.dcim.interfaces.filter(device_id=device.id):
            peers = [
                f"{(p.get('device') or {}).get('name')} {p.get('name')}"
                for p in (dict(iface).get("link_peers") or [])
                if isinstance(p, dict)
            ]
            mac = dict(iface).get("mac_address") or (
                (dict(iface).get("primary_mac_address") or {}).get("mac_address")
                if isinstance(dict(iface).get("primary_mac_address"), dict)
                else None
            )
            interfaces[iface.name] = {"mac": (mac or "").lower() or None, "peers": peers}
        journal = [
            {"created": j.created, "comments": j.comments}
            for j in api.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=device.id)
        ]
        out[server.name] = {
            "model": device.device_type.model if device.device_type else None,
            "manufacturer": getattr(getattr(device.device_type, "manufacturer", None), "name", None),
            "serial": device.serial,
            "oob_ip": device.oob_ip.address if device.oob_ip else None,
            "state": (device.custom_fields.get("lifecycle_state") or {}).get("value"),
            "custom_fields": dict(device.custom_fields),
            "interfaces": interfaces,
            "journal": journal,
        }
    return out


def forget(api: pynetbox.api, names: list[str]) -> None:
    """Earlier lab runs' servers go, with the IPs discovery recorded for them (interfaces and cables go along)."""
    for device in api.dcim.devices.filter(name=names):
        for ip in api.ipam.ip_addresses.filter(device_id=device.id):
            ip.delete()
        device.delete()
    for ip in api.ipam.ip_addresses.filter(parent=f"{NET}.0.0/16"):  # an IP left unassigned by an interrupted run
        ip.delete()


def free_ports(api: pynetbox.api, count: int) -> None:
    """The lab wires server i to EthernetI+1 of both ToRs: remove older cables on those ports (e.g. bm-lab-sim's)."""
    for switch in netbox_seed.SWITCHES:
        device = api.dcim.devices.get(name=switch)
        names = {f"Ethernet{i + 1}" for i in range(count)}
        for iface in api.dcim.interfaces.filter(device_id=device.id):
            if iface.name in names and iface.cable is not None:
                log.info("NetBox: removing the older cable #%s on %s %s (the lab's wiring)", iface.cable.id, switch,
                         iface.name)  # fmt: skip
                api.dcim.cables.get(iface.cable.id).delete()


def start_service(lab: Lab, password: str, servers: list[LabServer]) -> subprocess.Popen[bytes]:
    """`ansible-rulebook` inside prov (the stack through the relays; the BMCs at their leased addresses)."""
    env = sim.service_env(lab.args, lab.workdir, password, [s.sim for s in servers])
    env.update(
        BM_VALIDATION_CALLBACK_URL=sim.callback_url(f"{NET}.1.1", WEBHOOK_PORT),
        BM_PXE_KERNEL_URL=f"http://{NET}.1.1:{HTTP_PORT}/image/vmlinuz",
        BM_PXE_INITRD_URL=f"http://{NET}.1.1:{HTTP_PORT}/image/initrd.gz",
    )
    if not sim.plain_http():
        env["BM_VALIDATION_CALLBACK_CA"] = "/etc/bm/ca.pem"  # inside the image (build_image put the stack's CA there)
    service = sim.start_rulebook(
        lab.args, env, lab.logs / "rulebook.log", prefix=("/usr/sbin/ip", "netns", "exec", lab.prov)
    )
    try:
        lab.wait_listening(lab.prov, "127.0.0.1", WEBHOOK_PORT, "the rulebook's webhook", timeout=180, proc=service)
    except RuntimeError:
        sim.stop(service)
        raise
    time.sleep(2)  # the bus source creates its consumer group as it starts, next to the webhook
    return service


class Attack(Protocol):
    """Attackers in the lab (bm_lab.attacker): `during` once the service runs, before the leases; `after` once the
    evidence of the run is collected, the lab still up."""

    def during(self, lab: Lab, servers: list[LabServer]) -> None: ...

    def after(self, lab: Lab, servers: list[LabServer]) -> None: ...


def run(args: argparse.Namespace, attack: Attack | None = None) -> LabResult:  # noqa: PLR0912, PLR0915 - one sequence
    """Build the lab, lease every BMC, wait for `monitored` (or a failure), collect the evidence, tear down."""
    started, wall_start = time.monotonic(), time.time()
    phases: dict[str, float] = {}
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"cannot run the lab here, missing: {', '.join(missing)}")
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    sim.prepare_workdir(workdir)
    for sub in ("run", "qmp"):
        (workdir / sub).mkdir(mode=0o755, exist_ok=True)
    os.chmod(workdir, 0o755)  # noqa: S103 - lldpd resumes itself through an unprivileged lldpcli: it must reach its socket
    ca = None if sim.plain_http() else os.environ["BM_VALIDATION_CALLBACK_CA"]
    image = Path(args.image) if args.image else build_image(workdir / "overlay", ca)
    args.image = str(image)
    phases["image"] = time.monotonic() - started
    accel, accel_reason = detect_accel(image, workdir / "logs", args.accel)
    log.info("accelerator: %s (%s)", accel, accel_reason)
    phases["accel_probe"] = time.monotonic() - started - sum(phases.values())

    api = pynetbox.api(os.environ["NETBOX_API"], token=os.environ["NETBOX_TOKEN"])
    bus = redis.Redis.from_url(os.environ["BM_REDIS_URL"])
    redis_port = bus.connection_pool.connection_kwargs.get("port", 6379)
    netbox_port = urllib.parse.urlsplit(os.environ["NETBOX_API"]).port or 80
    password = secrets.token_urlsafe(12)
    lab = Lab(args, workdir)
    ilos = Ilos(args.count, args.seed, password, str(workdir / "qmp" / "{index}.sock"),
                [lab.bmc_ns(i) for i in range(args.count)], models=args.model.split(","))  # fmt: skip
    servers = [
        LabServer(sim.SimServer(f"lab{b.index + 1:03d}", b, ""), b.index, workdir / "qmp" / f"{b.index}.sock",
                  workdir / "logs" / f"serial-lab{b.index + 1:03d}.log")
        for b in ilos.bmcs
    ]  # fmt: skip
    service: subprocess.Popen[bytes] | None = None
    stop_watch = threading.Event()
    try:
        forget(api, [s.name for s in servers])
        registered = netbox_seed.seed(api, [(s.name, s.sim.bmc.bmc_mac) for s in servers])
        free_ports(api, len(servers))
        for record, server in zip(registered, servers, strict=True):
            server.sim.device_id = record.device_id
        lab.network(servers)
        ilos.start()
        lab.services(int(redis_port), netbox_port)
        for server in servers:
            lab.vm(server, accel)
        service = start_service(lab, password, servers)
        if attack is not None:
            attack.during(lab, servers)
        watcher = threading.Thread(target=lab.watch_tors, args=(stop_watch,), name="bm-lab-tors", daemon=True)
        watcher.start()
        phases["setup"] = time.monotonic() - started - sum(phases.values())
        log.info("lab ready in %.1f s; %d BMC(s) ask for their leases", time.monotonic() - started, len(servers))
        threads = [threading.Thread(target=lab.bmc_lease, args=(s,)) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for server in servers:
            server.sim.lease_at = server.lease_wall
        rows = sim.wait_for_end_states(api, [s.sim for s in servers], service, args.timeout)
        events = read_events(bus, servers, since=wall_start)
        for server in servers:  # the lease time is when the hook published it
            lease = next((e for e in events[server.name] if e["event_type"] == "dhcp_lease"), None)
            if lease is not None:
                server.sim.lease_at = sim.parse_time(lease["timestamp"]) or server.lease_wall
        rows = sim.timeline(api, [s.sim for s in servers])
        phases["pipeline"] = time.monotonic() - started - sum(phases.values())
        if not all(r["state"] == "monitored" for r in rows):
            lab.screendumps(servers)
        counters = [ilos.call(s.index, "counters") for s in servers]
        states = [ilos.call(s.index, "state") for s in servers]
        stop_watch.set()
        tor = {switch: {port: sorted(lines) for port, lines in ports.items()} for switch, ports in lab.heard.items()}
        nb = netbox_facts(api, servers)
        if attack is not None:
            attack.after(lab, servers)
    finally:
        stop_watch.set()
        if service is not None:
            sim.stop(service)
        ilos.stop()
        lab.close()
    return LabResult(servers, rows, counters, states, events, workdir, accel, accel_reason, image, nb, tor,
                     time.monotonic() - started, phases, args.dhcp)  # fmt: skip


def metrics_files(result: LabResult, server: LabServer) -> list[Path]:
    """The monitoring stage's files for this server."""
    return [p for p in (result.workdir / "metrics").rglob("*") if p.is_file() and server.name in p.name]


def print_report(result: LabResult) -> None:
    """The per-server timeline and where the time went."""
    print(f"DHCP server: {result.dhcp}; accelerator: {result.accel} ({result.accel_reason}); image {result.image}")
    sim.print_timeline(result.rows)
    for server in result.servers:
        chain = " -> ".join(e["event_type"] for e in result.events.get(server.name, []))
        bmc = server.sim.bmc
        print(f"{server.name}: {PROFILES[bmc.model].manager} in a {PROFILES[bmc.model].product}, BMC {bmc.bmc_mac} "
              f"leased {server.sim.lease_ip or '-'}; events: {chain}")  # fmt: skip
    print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.phases.items()) + f"; wall {result.wall_s:.1f}")
    print(f"{result.monitored}/{len(result.rows)} server(s) monitored; logs: {result.workdir / 'logs'}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `bm-lab-e2e`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1, help="servers (VMs), 1 to 3 (default 1)")
    parser.add_argument("--seed", default="bm-lab-e2e", help="seed of the servers' identities")
    parser.add_argument("--timeout", type=float, default=420, help="seconds to wait for every server to be monitored")
    parser.add_argument("--workdir", default=str(ROOT / ".lab" / "lab-e2e"), help="state and logs of this run")
    parser.add_argument("--image", help="image directory (vmlinuz, initrd.gz); default: build it with the overlay")
    parser.add_argument("--accel", choices=("kvm", "tcg"), help="skip the KVM probe")
    parser.add_argument("--memory", type=int, default=768, help="MiB per VM")
    parser.add_argument(
        "--model",
        type=sim._models,  # bm-lab-sim's check of its option of the same name
        default="ilo5,ilo6",
        help="mock iLO generations, cycled over the BMCs (default ilo5,ilo6: a mixed fleet); each VM's SMBIOS identity "
        "is its iLO's server",
    )
    parser.add_argument("--rulebook", default="bm.lifecycle.lifecycle", help="rulebook FQCN or path")
    parser.add_argument(
        "--dhcp", choices=("isc", "kea"), default="isc", help="the DHCP server (default isc: ISC dhcpd)"
    )
    parser.add_argument("--json", help="also write the timeline as JSON to this file")
    parser.add_argument(
        "--check", action="store_true", help="only say whether this machine can run the lab (exit 0) or not (exit 3)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (`bm-lab-e2e --help`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.webhook_port = WEBHOOK_PORT
    if args.check:
        missing = missing_tools()
        print(f"lab: missing {', '.join(missing)}" if missing else "lab: this machine can run it")
        return 3 if missing else 0
    logging.basicConfig(level=logging.INFO, format="[bm-lab %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for name in ("NETBOX_API", "NETBOX_TOKEN", "BM_REDIS_URL", *(() if sim.plain_http() else sim.TLS_SETTINGS)):
        if not os.environ.get(name):
            parser.error(f"{name} is not set: run `make up` and load .lab/stack.env (or BM_WEBHOOK_PLAIN_HTTP=1)")
    if not 1 <= args.count <= 3:
        parser.error("--count must be between 1 and 3")

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through run()'s finally: everything is removed

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    result = run(args)
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": result.rows, "phases": result.phases}, indent=2))
    return 0 if result.monitored == len(result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
