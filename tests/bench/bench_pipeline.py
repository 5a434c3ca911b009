"""The whole pipeline (bm_lab.sim: DHCP hook -> rulebook -> every stage -> monitored) for 1, 10 and 100 servers.

Prints servers per hour from lease to monitored, per-stage latency p50/p95 (event publication, from the Redis stream
entry ids, to the stage's end: its follow-up event's entry id; the host's boot from NetBox's pxe_boot_initiated_at,
monitoring to its last_monitored_at),
CPU-seconds per server by component (process trees read with psutil, reaped children included), NetBox requests
(gunicorn's access log), writes (its change log) and PostgreSQL transactions per server, and the floors: NetBox PATCH
latency x writes per server, the start cost of one `ansible-playbook`; the pipeline's cost as a ratio to them.

1,000 more with `make bench-large`; BM_BENCH_PIPELINE_COUNTS=1,10 picks the sizes (100 servers take about 40 min).
Runs on the stack of BM_LAB_DIR (default .lab); BM_SIM_WEBHOOK_PORT / BM_SIM_FIRST_ADDRESS move the webhook and BMCs.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pynetbox
import redis
import requests

from bm_lab import sim
from bm_lab.chaos import bus_entries
from helpers import ROOT, VENV_BIN, ansible_env, ansible_playbook, read_env_file

LAB = Path(os.environ.get("BM_LAB_DIR") or ROOT / ".lab")
STACK_SH = ROOT / "scripts" / "stack.sh"
NETBOX = "netbox:"  # a stage point read from the device's custom field of that name, not from an event
STAGES = (  # stage, where it starts, where it ends: an event type (its first publication) or a NetBox timestamp
    ("discovery", "dhcp_lease", "device_discovered"),
    ("provisioning", "device_discovered", "pxe_boot_initiated"),
    # from the claim just before the reset: pxe_boot_initiated is published with the batch's acknowledgement, after
    # the last reset of the batch, so an early host of a large batch reports before it
    ("host boot + report", f"{NETBOX}pxe_boot_initiated_at", "validation_report"),
    ("validation_report", "validation_report", "validation_completed"),
    ("hardening", "validation_completed", "hardening_completed"),
    ("monitoring", "hardening_completed", f"{NETBOX}last_monitored_at"),
)
SERVERS_PER_HOUR_FLOOR = 60  # the sim's timeout: half the slowest rate measured here (2 cores: 124-151 servers/hour)
TRIVIAL_PLAYBOOK = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


def prepare_stack() -> dict[str, str]:
    """The stack's settings, NetBox reset to the bootstrapped template (bootstrapped first if there is none)."""
    subprocess.run([STACK_SH, "up"], check=True, capture_output=True)
    settings = read_env_file(LAB / "stack.env")
    for key, value in settings.items():
        os.environ.setdefault(key, value)
    if subprocess.run([STACK_SH, "reset"], capture_output=True).returncode != 0:  # no template yet
        subprocess.run([STACK_SH, "fresh"], check=True, capture_output=True)
        for playbook in ("bm.lifecycle.bootstrap_netbox", "bm.lifecycle.demo_data"):
            ansible_playbook(playbook).check_returncode()
        subprocess.run([STACK_SH, "template"], check=True, capture_output=True)
        subprocess.run([STACK_SH, "reset"], check=True, capture_output=True)
    return settings


def cpu_of_tree(root: psutil.Process) -> float:
    """CPU-seconds of a process, its live descendants and every child they reaped."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def thread_cpu(native_id: int) -> float:
    """CPU-seconds of one thread of this process."""
    return next((t.user_time + t.system_time for t in psutil.Process().threads() if t.id == native_id), 0.0)


class Probe:
    """The `during` hook of `sim.run`: waits for the service to listen, then measures CPU by component until the end."""

    def __init__(self, webhook_port: int) -> None:
        self.webhook_port = webhook_port
        self.cpu: dict[str, float] = {}
        self.xacts = 0
        self.started_at = 0.0
        self.recaps = 0
        self.requests: Counter[str] = Counter()

    def roots(self, running: sim.SimRun) -> dict[str, psutil.Process]:
        """The root process of each component."""
        assert running.service.process is not None
        return {
            "rulebook + ansible-playbook": psutil.Process(running.service.process.pid),
            "netbox (gunicorn)": psutil.Process(int((LAB / "run" / "netbox.pid").read_text())),
            "postgresql": psutil.Process(int((LAB / "postgres" / "postmaster.pid").read_text().split()[0])),
            "redis": psutil.Process(int((LAB / "run" / "redis.pid").read_text())),
        }

    def snapshot(self, running: sim.SimRun) -> dict[str, float]:
        """Cumulative CPU-seconds per component now (the rulebook split from the playbooks it ran)."""
        roots = self.roots(running)
        rulebook = roots.pop("rulebook + ansible-playbook")
        own = rulebook.cpu_times()
        out = {"rulebook (ansible-rulebook)": own.user + own.system}
        out["ansible-playbook (+ modules)"] = cpu_of_tree(rulebook) - out["rulebook (ansible-rulebook)"]
        out |= {name: cpu_of_tree(process) for name, process in roots.items()}
        mock = next(t for t in threading.enumerate() if t.name == "bm-mock-ilo")
        out["mock iLOs (event loop)"] = thread_cpu(mock.native_id or 0)
        return out

    def transactions(self) -> int:
        """PostgreSQL's committed transactions on NetBox's database so far."""
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'netbox'"
        return int(
            subprocess.run(
                ["psql", "-X", "-h", "127.0.0.1", "-p", os.environ["BM_PG_PORT"], "-U", "netbox", "-d", "postgres",
                 "-tAc", query],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        )  # fmt: skip

    @contextlib.contextmanager
    def __call__(self, running: sim.SimRun) -> Iterator[Probe]:
        """Wait until the webhook listens (the rulebook's start is not the pipeline's cost), measure until the end."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.webhook_port), 1):
                break
            time.sleep(0.5)
        before, xacts, requests = self.snapshot(running), self.transactions(), netbox_requests()
        self.started_at = time.time()
        yield self
        after = self.snapshot(running)
        self.cpu = {name: after[name] - before[name] for name in after}
        self.xacts = self.transactions() - xacts
        self.requests = netbox_requests() - requests  # Counter subtraction keeps the positive counts
        self.recaps = sum(p.read_text(errors="replace").count("PLAY RECAP") for p in running.service.log_paths)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def entry_seconds(entry_id: str) -> float:
    """The Unix time of a stream entry id (`<ms>-<seq>`)."""
    return int(entry_id.split("-", maxsplit=1)[0]) / 1000


def stage_latencies(client: redis.Redis, api: pynetbox.api, servers: list[sim.SimServer]) -> dict[str, list[float]]:
    """Per stage, seconds from its starting event's publication to its end, one value per server."""
    entries = bus_entries(client)
    published = {envelope["event_id"]: entry_seconds(entry_id) for _s, entry_id, envelope in entries}
    first: dict[tuple[int, str], float] = {}
    for _stream, entry_id, envelope in entries:
        device = (envelope.get("device") or {}).get("id")
        if device is None:
            continue
        first.setdefault((device, envelope["event_type"]), entry_seconds(entry_id))
        if envelope["event_type"] == "device_discovered":  # the lease carries no device: take the one it caused
            first.setdefault((device, "dhcp_lease"), published.get(envelope.get("causation_id") or "", 0.0))
    out: dict[str, list[float]] = {name: [] for name, _start, _end in STAGES}
    for server in servers:
        fields = api.dcim.devices.get(server.device_id).custom_fields
        for name, start, end in STAGES:
            began, ended = (
                sim.parse_time(fields.get(point.removeprefix(NETBOX)))
                if point.startswith(NETBOX)
                else first.get((server.device_id, point))
                for point in (start, end)
            )
            if began and ended is not None:
                out[name].append(ended - began)
    return out


def netbox_requests() -> Counter[str]:
    """Requests NetBox has answered so far, by client (gunicorn's access log; its last field is the User-Agent, which
    the collection's modules set to their own name)."""
    path = LAB / "logs" / "netbox-access.log"
    counts: Counter[str] = Counter()
    if path.exists():
        with path.open("rb") as log:
            for line in log:
                counts[line.rstrip().rsplit(b'"', 2)[-2].decode(errors="replace")] += 1
    return counts


def netbox_writes(api: pynetbox.api, since: float) -> int:
    """Objects NetBox's change log recorded since `since` (creates, updates, deletes)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    return api.core.object_changes.count(time_after=stamp)


def patch_latency(settings: dict[str, str], samples: int = 20) -> float:
    """Median seconds of one PATCH of a device's description (a kept-alive session, as the stages use)."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {settings['NETBOX_TOKEN']}"
    base = settings["NETBOX_API"]
    device = http.get(f"{base}/api/dcim/devices/?limit=1", timeout=10).json()["results"][0]["id"]
    times = []
    for n in range(samples):
        started = time.perf_counter()
        http.patch(
            f"{base}/api/dcim/devices/{device}/", json={"description": f"bench {n}"}, timeout=10
        ).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def playbook_start_cost(runs: int = 3) -> tuple[float, float]:
    """Median wall seconds and mean CPU-seconds of one `ansible-playbook` of a one-task playbook."""
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        playbook = Path(tmp) / "trivial.yml"
        playbook.write_text(TRIVIAL_PLAYBOOK)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventory" / "local.yml"), str(playbook)],
                cwd=ROOT, env=ansible_env(), check=True, capture_output=True,
            )  # fmt: skip
            walls.append(time.perf_counter() - started)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return statistics.median(walls), cpu / runs


def bench_count(count: int, settings: dict[str, str], floors: tuple[float, float]) -> None:
    """One pipeline run of `count` servers and its numbers."""
    subprocess.run([STACK_SH, "reset"], check=True, capture_output=True)
    timeout = 300 + 3600 * count / SERVERS_PER_HOUR_FLOOR
    args = sim.build_parser().parse_args(
        ["--count", str(count), "--timeout", str(timeout), "--no-renewal",
         "--workdir", str(LAB / "bench-pipeline")]
    )  # fmt: skip
    probe = Probe(args.webhook_port)
    result = sim.run(args, during=probe)
    api = pynetbox.api(settings["NETBOX_API"], token=settings["NETBOX_TOKEN"])
    client = redis.Redis.from_url(settings["BM_REDIS_URL"], decode_responses=True)
    monitored = [s for s, row in zip(result.servers, result.rows, strict=True) if row["state"] == "monitored"]
    print(f"-- {count} server(s): {len(monitored)} monitored", flush=True)
    if not monitored:
        return
    ends = [
        sim.parse_time(api.dcim.devices.get(s.device_id).custom_fields.get("last_monitored_at")) or 0 for s in monitored
    ]
    span = max(ends) - min(s.lease_at for s in monitored)
    print(f"lease to monitored: {span:.1f} s for {len(monitored)}: {len(monitored) / span * 3600:.0f} servers/hour")
    for name, values in stage_latencies(client, api, monitored).items():
        if values:
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            print(f"  stage {name:<20} p50 {p50:6.2f} s  p95 {p95:6.2f} s  (n={len(values)})")
    per = len(monitored)
    total_cpu = sum(probe.cpu.values())
    for name, seconds in probe.cpu.items():
        print(f"  CPU {name:<30} {seconds / per:7.2f} s/server")
    print(f"  CPU all components            {total_cpu / per:7.2f} s/server")
    writes = netbox_writes(api, probe.started_at)
    ours = {agent: n for agent, n in probe.requests.items() if agent.startswith("bm.lifecycle")}
    print(f"  NetBox requests {sum(ours.values()) / per:.1f}/server by the pipeline "
          f"({sum(probe.requests.values()) / per:.1f} with the sim's polls); writes {writes / per:.1f}/server "
          f"(change log); PG commits {probe.xacts / per:.0f}/server")  # fmt: skip
    for agent, n in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"    {agent:<44} {n / per:6.2f}/server")
    print(f"  playbook runs {probe.recaps} ({probe.recaps / per:.2f}/server)")
    patch_s, playbook_cpu = floors
    netbox_floor = patch_s * writes / per
    wall_per_server = span / per
    print(f"  floor NetBox: {writes / per:.1f} writes x {patch_s * 1000:.0f} ms = {netbox_floor:.2f} s/server; "
          f"pipeline wall per server {wall_per_server:.2f} s = {wall_per_server / netbox_floor:.1f}x")  # fmt: skip
    playbook_floor = playbook_cpu * probe.recaps / per
    print(f"  floor ansible-playbook starts: {probe.recaps / per:.2f} x {playbook_cpu:.2f} CPU-s = "
          f"{playbook_floor:.2f} CPU-s/server; pipeline CPU {total_cpu / per:.2f} s = "
          f"{total_cpu / per / playbook_floor:.1f}x")  # fmt: skip
    client.close()


def counts(large: bool) -> list[int]:
    """The fleet sizes to run."""
    chosen = os.environ.get("BM_BENCH_PIPELINE_COUNTS")
    if chosen:
        return [int(n) for n in chosen.split(",")]
    return [1, 10, 100, 1000] if large else [1, 10, 100]


def run(large: bool) -> None:
    """Print the pipeline's numbers for each fleet size (bounded: each run times out)."""
    settings = prepare_stack()
    patch_s = patch_latency(settings)
    playbook_wall, playbook_cpu = playbook_start_cost()
    print(f"floor: NetBox PATCH p50 {patch_s * 1000:.1f} ms; one ansible-playbook start: {playbook_wall:.2f} s wall, "
          f"{playbook_cpu:.2f} CPU-s")  # fmt: skip
    for count in counts(large):
        bench_count(count, settings, (patch_s, playbook_cpu))
    subprocess.run([STACK_SH, "reset"], check=True, capture_output=True)
