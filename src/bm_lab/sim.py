"""bm-lab-sim: the whole pipeline for N simulated servers on the local stack, from DHCP lease to `monitored`.

Everything is the real thing except the servers: NetBox, Redis, the DHCP hook (run as dhcpd runs it, with its spool
flush timer), the `ansible-rulebook` service with every stage playbook, and the validation webhook. Each server is a
mock iLO (iLO 5 and iLO 6 cycled by default, `--model`) whose simulated host, when it boots from PXE, reads the boot
script provisioning rendered for it (device id, callback URL, CA; no secret), asks the webhook for its single-use token
with the identity dmidecode would read (its iLO's system UUID and serial) and posts the report the validation image
would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
import pynetbox
import requests
import yaml

from bm_lab import netbox_seed
from bm_lab.report import Cable, Server, build_report
from bm_mock_ilo.bmc import MODELS, Settings
from bm_mock_ilo.models import PROFILES
from bm_mock_ilo.testing import BmcInfo, FleetHandle, start_fleet

log = logging.getLogger("bm-lab-sim")
ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "bm" / "lifecycle"
HOOK = COLLECTION / "files" / "dhcp_hook.py"
TIMESTAMPS = (
    ("discovered", "discovered_at"),
    ("pxe", "pxe_boot_initiated_at"),
    ("validated", "validation_completed_at"),
    ("hardened", "hardened_at"),
    ("monitored", "last_monitored_at"),
)
TLS_SETTINGS = ("BM_WEBHOOK_CERTFILE", "BM_WEBHOOK_KEYFILE", "BM_VALIDATION_CALLBACK_CA")  # `make up` makes them


def plain_http() -> bool:
    """Whether the webhook serves plain HTTP (BM_WEBHOOK_PLAIN_HTTP, asked for explicitly) instead of TLS."""
    return os.environ.get("BM_WEBHOOK_PLAIN_HTTP", "").strip().lower() in ("1", "true", "yes")


def callback_url(host: str, port: int) -> str:
    """The validation webhook's report URL: https unless plain HTTP was asked for."""
    return f"{'http' if plain_http() else 'https'}://{host}:{port}/api/v1/validation/report"


BOOT_PARAM = re.compile(r"\bbm\.(device_id|callback|ca)=(\S+)")


@dataclass
class SimServer:
    """One simulated server: its BMC, its NetBox device and what happened to it."""

    name: str
    bmc: BmcInfo
    lease_ip: str
    device_id: int = 0
    lease_at: float = 0.0
    reports_posted: int = 0
    errors: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # handed out to its validation agent (secrets: no log shows them)


class ValidationAgent:
    """Plays the validation image: on a PXE boot, read the server's boot script, ask for its token, post its report."""

    def __init__(self, boot_dir: Path, servers: dict[int, SimServer], deadline_s: float = 300) -> None:
        self.boot_dir = boot_dir
        self.servers = servers
        self.deadline_s = deadline_s

    def boot_params(self, server: SimServer) -> dict[str, str]:
        """The bm.* kernel parameters of the server's boot script (written by provisioning before the reset)."""
        path = self.boot_dir / f"{server.name}.ipxe"
        for _ in range(50):
            if path.exists():
                return dict(BOOT_PARAM.findall(path.read_text()))
            time.sleep(0.2)
        raise FileNotFoundError(f"no boot script {path}")

    def on_pxe_boot(self, bmc: BmcInfo) -> None:
        """Called by the mock when the server boots from PXE (in a worker thread)."""
        server = self.servers[bmc.index]
        try:
            params = self.boot_params(server)
            report = build_report(
                Server(
                    device_id=server.device_id,
                    serial=bmc.serial,
                    uuid=bmc.uuid,
                    model=PROFILES[bmc.model].product,  # what dmidecode says of the server behind this iLO
                    cables=tuple(cables(bmc)),
                )
            )
            system = {"uuid": bmc.uuid.upper(), "serial": bmc.serial}  # as dmidecode prints them
            asked = {"device_id": str(server.device_id), "request_id": secrets.token_hex(16), "system": system}
            token_url = params["callback"].rsplit("/", 1)[0] + "/token"
            token = str(self.post(token_url, asked, {}, params.get("ca"), refusals=1).json()["token"])
            server.tokens.append(token)
            self.post(params["callback"], report, {"Authorization": f"Bearer {token}"}, params.get("ca"))
            server.reports_posted += 1
        except Exception as exc:  # the image would log and power off; the run reports it
            server.errors.append(f"validation agent: {exc}")
            log.warning("%s: validation agent failed: %s", server.name, exc)

    def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str], ca: str | None, refusals: int = 3
    ) -> requests.Response:
        """POST with backoff until a 2xx, like validate_server.sh (connect 10 s, whole request 60 s): network errors,
        timeouts, 5xx, 408, 425 and 429 are retried; the `refusals`th other 4xx is final (the token's first one)."""
        delay, deadline, refused = 1.0, time.monotonic() + self.deadline_s, 0
        while True:
            try:
                response = requests.post(url, json=body, headers=headers, timeout=(10, 60), verify=ca or True)
                if response.ok:
                    return response
                if 400 <= response.status_code < 500 and response.status_code not in {408, 425, 429}:
                    refused += 1
                    if refused >= refusals:
                        raise RuntimeError(f"{url} refused: HTTP {response.status_code} {response.text[:200]}")
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"no 2xx from {url} within {self.deadline_s:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 15)


def cables(bmc: BmcInfo) -> list[Cable]:
    """Server i's eno1 and eno2 go to port Ethernet<i+1> of tor1 and tor2."""
    port = f"Ethernet{bmc.index + 1}"
    return [
        Cable(nic, mac, switch, netbox_seed.switch_mac(s), netbox_seed.switch_ip(s), port)
        for s, (nic, mac, switch) in enumerate(zip(("eno1", "eno2"), bmc.nic_macs, netbox_seed.SWITCHES, strict=True))
    ]


def publish_lease(server: SimServer, env: dict[str, str]) -> None:
    """Run the real DHCP hook the way dhcpd's `on commit { execute(...) }` does."""
    subprocess.run(  # noqa: S603 - our own hook with validated arguments
        [sys.executable, str(HOOK), server.lease_ip, server.bmc.bmc_mac, f"ilo-{server.name}"],
        env=env,
        check=True,
        timeout=10,
    )
    server.lease_at = time.time()


@contextlib.contextmanager
def spool_flush_timer(env: dict[str, str], every_s: float = 30.0) -> Iterator[None]:
    """What install_dhcp_hook's bm-dhcp-hook-flush.timer does on a DHCP server: `dhcp_hook.py --flush` every
    `every_s`, so leases the hook spooled (Redis down or too slow in a burst) do not wait for a renewal."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            subprocess.run([sys.executable, str(HOOK), "--flush"], env=env, check=False, timeout=660)  # noqa: S603

    thread = threading.Thread(target=loop, name="spool-flush-timer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)  # a flush under way ends with the run (the hook bounds its own time); daemon past that


def _models(value: str) -> str:
    models = value.split(",")
    if not all(model in MODELS for model in models):
        raise argparse.ArgumentTypeError(f"each model must be one of {', '.join(MODELS)}")
    return value


def parse_time(value: str | None) -> float | None:
    """An ISO 8601 custom-field value as a Unix time."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def read_devices(api: pynetbox.api, ids: list[int], chunk: int = 100) -> dict[int, Any]:
    """The devices by id, one list request per `chunk` ids: a poll must not load the NetBox it measures."""
    found: dict[int, Any] = {}
    for start in range(0, len(ids), chunk):
        found.update({d.id: d for d in api.dcim.devices.filter(id=ids[start : start + chunk])})
    return found


def timeline(api: pynetbox.api, servers: list[SimServer]) -> list[dict[str, Any]]:
    """Per server: its state and the seconds from its lease to each stage's timestamp in NetBox."""
    devices = read_devices(api, [s.device_id for s in servers])
    rows = []
    for server in servers:
        fields = devices[server.device_id].custom_fields
        row: dict[str, Any] = {"name": server.name, "state": (fields.get("lifecycle_state") or {}).get("value")}
        for label, name in TIMESTAMPS:
            at = parse_time(fields.get(name))
            row[label] = None if at is None else round(at - server.lease_at, 1)
        rows.append(row)
    return rows


def print_timeline(rows: list[dict[str, Any]]) -> None:
    """The timeline table: seconds after the lease at which each stage finished."""
    header = f"{'server':<8} {'state':<22}" + "".join(f"{label:>11}" for label, _ in TIMESTAMPS)
    print(header)
    for row in rows:
        cells = "".join(f"{'-' if row[label] is None else row[label]:>11}" for label, _ in TIMESTAMPS)
        print(f"{row['name']:<8} {row['state'] or '-':<22}{cells}")


def service_env(args: argparse.Namespace, workdir: Path, password: str, servers: list[SimServer]) -> dict[str, str]:
    """The environment of the rulebook service for this run."""
    env = dict(os.environ)
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        JAVA_HOME=env.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"),
        BM_BMC_USERNAME="Administrator",
        BM_BMC_PASSWORD=password,
        BM_BMC_VALIDATE_CERTS="false",
        BM_BMC_CREDENTIALS_DIR=str(workdir / "bmc-credentials"),
        ANSIBLE_VAULT_PASSWORD_FILE=str(workdir / "vault-password"),
        BM_PXE_BOOT_DIR=str(workdir / "pxe"),
        BM_VALIDATION_CALLBACK_URL=callback_url("127.0.0.1", args.webhook_port),
        BM_METRICS_DIR=str(workdir / "metrics"),
        BM_HOOK_SPOOL=str(workdir / "hook-spool"),
    )
    return env


def prepare_workdir(workdir: Path) -> None:
    """Fresh private directories for boot scripts, credentials, metrics and the hook's spool."""
    for sub in ("pxe", "bmc-credentials", "metrics", "hook-spool", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    # The fleet restarts with factory credentials and no boot scripts; an earlier run's spooled leases are not ours.
    for sub in ("pxe", "bmc-credentials", "hook-spool"):
        for stale in (workdir / sub).glob("*"):
            stale.unlink()
    vault = workdir / "vault-password"
    if not vault.exists():
        vault.write_text(secrets.token_urlsafe(32) + "\n")
        vault.chmod(0o600)


def webhook_rulebook(args: argparse.Namespace, workdir: Path) -> str:
    """`--rulebook` with its validation webhook on `--webhook-port` and its NetBox webhook on the next port (the
    collection's rulebook says 5000 and 5001), so that runs beside each other do not collide."""
    name = args.rulebook
    path = COLLECTION / "extensions" / "eda" / "rulebooks" / f"{name.split('.')[-1]}.yml"
    rulesets = yaml.safe_load((path if name.startswith("bm.lifecycle.") else Path(name)).read_text())
    for ruleset in rulesets:
        for source in ruleset.get("sources", []):
            if "bm.lifecycle.validation_webhook" in source:
                source["bm.lifecycle.validation_webhook"]["port"] = args.webhook_port
            if "bm.lifecycle.netbox_webhook" in source:
                source["bm.lifecycle.netbox_webhook"]["port"] = args.webhook_port + 1
    rendered = workdir / "rulebook.yml"
    rendered.write_text(yaml.safe_dump(rulesets, sort_keys=False))
    return str(rendered)


def start_rulebook(
    args: argparse.Namespace,
    env: dict[str, str],
    log_path: Path,
    prefix: tuple[str, ...] = (),
    rulebook: str | None = None,
) -> subprocess.Popen[bytes]:
    """The bm-lifecycle service, as `ansible-rulebook` runs it in production (`prefix`: e.g. `ip netns exec NS`)."""
    command = [
        *prefix,
        str(ROOT / ".venv" / "bin" / "ansible-rulebook"),
        "-r", rulebook or args.rulebook,
        "-i", str(ROOT / "inventory" / "local.yml"),
    ]  # fmt: skip
    with log_path.open("wb") as out:
        return subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service we started, then SIGKILL if it does not go within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Polled(Protocol):
    """What the waits below need of the service: `subprocess.Popen` or `Service`."""

    def poll(self) -> int | None:
        """None while it runs."""


class Service:
    """The rulebook service of a run; it can be SIGKILLed and started again (as systemd's `Restart=` would)."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> None:
        self.args = args
        self.env = env
        self.log_dir = workdir / "logs"
        self.rulebook = webhook_rulebook(args, workdir)
        self.starts = 0
        self.restarting = False
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_paths(self) -> list[Path]:
        """The log of every start: rulebook.log, then rulebook.2.log, rulebook.3.log, ..."""
        return [self.log_dir / ("rulebook.log" if n == 1 else f"rulebook.{n}.log") for n in range(1, self.starts + 1)]

    def start(self) -> None:
        """Start the service (again), logging to a new file."""
        self.starts += 1
        self.process = start_rulebook(self.args, self.env, self.log_paths[-1], rulebook=self.rulebook)
        self.restarting = False
        log.info("service started (pid %d); log: %s", self.process.pid, self.log_paths[-1])

    def kill(self) -> int:
        """SIGKILL the service and every process it started (systemd's KillMode=control-group); returns its PID."""
        assert self.process is not None
        self.restarting = True
        pid = self.process.pid
        with contextlib.suppress(psutil.NoSuchProcess):
            tree = psutil.Process(pid).children(recursive=True)
            self.process.kill()
            for child in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            psutil.wait_procs(tree, timeout=10)
        self.process.wait(10)
        return pid

    def poll(self) -> int | None:
        """None while the service runs or is being restarted on purpose; else its exit code."""
        if self.restarting or self.process is None:
            return None
        return self.process.poll()

    def stop(self) -> None:
        """Stop the service (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            stop(self.process)


@dataclass
class SimRun:
    """A run in progress, as a `during` hook of `run` sees it."""

    api: pynetbox.api
    fleet: FleetHandle
    servers: list[SimServer]
    env: dict[str, str]
    service: Service


@dataclass
class SimResult:
    """What a run produced: the servers, their timeline rows, and each BMC's counters at the end."""

    servers: list[SimServer]
    rows: list[dict[str, Any]]
    counters: list[dict[str, Any]]
    workdir: Path
    bmc_password: str

    @property
    def monitored(self) -> int:
        """How many servers reached `monitored`."""
        return sum(row["state"] == "monitored" for row in self.rows)


def poll_netbox[T](read: Callable[[], T], done: Callable[[T], bool], service: Polled, timeout: float) -> T | None:
    """Call `read` every 2 s until `done` says yes, the service dies or the time is up; returns its last result.

    A failed NetBox request (NetBox restarting, busy, or without Redis) is logged and retried."""
    deadline = time.monotonic() + timeout
    result: T | None = None
    while time.monotonic() < deadline and service.poll() is None:
        try:
            result = read()
        except (requests.RequestException, pynetbox.RequestError) as exc:
            log.info("NetBox poll failed (%s); retrying", exc)
        else:
            if done(result):
                break
        time.sleep(2)
    return result


def wait_for_end_states(
    api: pynetbox.api, servers: list[SimServer], service: Polled, timeout: float
) -> list[dict[str, Any]]:
    """Poll NetBox until every server is `monitored` or failed, the service died, or the time is up."""

    def ended(rows: list[dict[str, Any]]) -> bool:
        return all(row["state"] == "monitored" or str(row["state"]).endswith("_failed") for row in rows)

    return poll_netbox(lambda: timeline(api, servers), ended, service, timeout) or timeline(api, servers)


def renew_leases(api: pynetbox.api, servers: list[SimServer], env: dict[str, str], service: Polled) -> None:
    """Renew every BMC's lease (dhcpd fires the hook on each renewal): NetBox keeps the IP, nothing reboots."""
    for server in servers:
        lease_at = server.lease_at
        publish_lease(server, env)
        server.lease_at = lease_at
    log.info("%d lease renewal(s) published", len(servers))

    def renewed(devices: dict[int, Any]) -> bool:
        return all(
            devices[s.device_id].oob_ip and devices[s.device_id].oob_ip.address.split("/")[0] == s.lease_ip
            for s in servers
        )

    devices = poll_netbox(lambda: read_devices(api, [s.device_id for s in servers]), renewed, service, 120)
    if devices is None or not renewed(devices):
        log.warning("not every renewal reached NetBox within 120 s")


def run(
    args: argparse.Namespace, during: Callable[[SimRun], AbstractContextManager[object]] | None = None
) -> SimResult:
    """Seed NetBox, start the fleet and the service, lease every BMC, wait for `monitored`.

    `during` (e.g. a chaos schedule) is entered once the service runs and left once every server reached its end
    state, before the renewals.
    """
    api = pynetbox.api(os.environ["NETBOX_API"], token=os.environ["NETBOX_TOKEN"])
    workdir = Path(args.workdir).resolve()
    prepare_workdir(workdir)
    password = secrets.token_urlsafe(12)
    by_index: dict[int, SimServer] = {}
    agent = ValidationAgent(workdir / "pxe", by_index)
    settings = [
        Settings(model=model, post_seconds=args.post_seconds, manager_reset_seconds=2.0)
        for model in args.model.split(",")
    ]
    with start_fleet(
        args.count,
        seed=args.seed,
        settings=settings,
        password=password,
        on_pxe_boot=agent.on_pxe_boot,
        first_address=args.first_address,
        base_port=443,
    ) as fleet:
        servers = [SimServer(f"sim{b.index + 1:03d}", b, b.address) for b in fleet]
        by_index.update({s.bmc.index: s for s in servers})
        removed = netbox_seed.remove(api, [s.name for s in servers])
        if removed:
            log.info("removed %d server(s) of an earlier run from NetBox", removed)
        registered = netbox_seed.seed(api, [(s.name, s.bmc.bmc_mac) for s in servers])
        for record, server in zip(registered, servers, strict=True):
            server.device_id = record.device_id
        env = service_env(args, workdir, password, servers)
        service = Service(args, env, workdir)
        service.start()
        try:
            with (
                spool_flush_timer(env),
                during(SimRun(api, fleet, servers, env, service)) if during else contextlib.nullcontext(),
            ):
                threads = [threading.Thread(target=publish_lease, args=(s, env)) for s in servers]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                log.info("%d lease(s) published through the DHCP hook", len(servers))
                rows = wait_for_end_states(api, servers, service, args.timeout)
            if args.renewal:
                renew_leases(api, servers, env, service)
                rows = timeline(api, servers)
        finally:
            service.stop()
        counters = [fleet.counters(s.bmc.index) for s in servers]
    return SimResult(servers, rows, counters, workdir, password)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `bm-lab-sim`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1, help="simulated servers (default 1)")
    parser.add_argument("--seed", default="bm-lab-sim", help="seed of the fleet's identities")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every server to be monitored")
    parser.add_argument("--workdir", default=str(ROOT / ".lab" / "sim"), help="state of this run (default .lab/sim)")
    parser.add_argument("--rulebook", default="bm.lifecycle.lifecycle", help="rulebook FQCN or path")
    parser.add_argument(
        "--first-address",
        default=os.environ.get("BM_SIM_FIRST_ADDRESS", "127.0.10.1"),
        help="loopback address of the first BMC (HTTPS on port 443, the next BMCs on the next addresses); "
        "it is also the IP its DHCP lease reports; default: $BM_SIM_FIRST_ADDRESS or 127.0.10.1",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=int(os.environ.get("BM_SIM_WEBHOOK_PORT", "5000")),
        help="port of the rulebook's validation webhook (default: $BM_SIM_WEBHOOK_PORT or 5000)",
    )
    parser.add_argument("--post-seconds", type=float, default=1.0, help="simulated POST time of a server")
    parser.add_argument(
        "--model",
        type=_models,
        default="ilo5,ilo6",
        help="mock iLO generations, cycled over the BMCs (default ilo5,ilo6: a mixed fleet)",
    )
    parser.add_argument(
        "--no-renewal",
        dest="renewal",
        action="store_false",
        help="skip the lease renewals with new IPs sent once every server reached its end state",
    )
    parser.add_argument("--json", help="also write the timeline as JSON to this file")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error unless the stack's settings are in the environment and the fleet size is sane."""
    for name in ("NETBOX_API", "NETBOX_TOKEN", "BM_REDIS_URL", *(() if plain_http() else TLS_SETTINGS)):
        if not os.environ.get(name):
            parser.error(f"{name} is not set: run `make up` and load .lab/stack.env (or BM_WEBHOOK_PLAIN_HTTP=1)")
    if args.count < 1 or args.count > 1000:
        parser.error("--count must be between 1 and 1000")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (`bm-lab-sim --help`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bm-lab-sim %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    check_args(parser, args)
    result = run(args)
    print_timeline(result.rows)
    for server in result.servers:
        for error in server.errors:
            print(f"{server.name}: {error}")
    print(f"{result.monitored}/{len(result.rows)} server(s) monitored; service log: {result.workdir / 'logs'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.rows, indent=2))
    return 0 if result.monitored == len(result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
