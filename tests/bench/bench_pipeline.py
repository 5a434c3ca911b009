"""The whole pipeline (bm_lab.sim: DHCP hook -> rulebook -> every stage -> monitored) for 1, 10 and 100 servers.

Prints servers per hour from lease to monitored, per-stage latency p50/p95 (event publication, from the Redis stream
entry ids, to the stage's end: its follow-up event's entry id; the host's boot from NetBox's pxe_boot_initiated_at,
monitoring to its last_monitored_at),
CPU-seconds per server by component (process trees read with psutil, reaped children included), NetBox requests
(gunicorn's access log), writes (its change log, by object type) and PostgreSQL transactions per server, and the floors:
NetBox PATCH latency x writes per server, the start cost of one `ansible-playbook`, and what NetBox (gunicorn +
PostgreSQL) costs per object of each kind the pipeline writes in bulk (measured on a reset NetBox before the runs)
summed over the run's write mix; the pipeline's cost as a ratio to them.

1,000 more with `make bench-large`; BM_BENCH_PIPELINE_COUNTS=1,10 picks the sizes (100 servers take about 40 min).
Runs on the stack of BM_LAB_DIR (default .lab); BM_SIM_WEBHOOK_PORT / BM_SIM_FIRST_ADDRESS move the webhook and BMCs.
"""

from __future__ import annotations

import contextlib
import datetime
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pynetbox
import redis
import requests

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import TRANSITIONS, journal_text, plan
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    INTERFACE_OBJECT_TYPE,
    NetBoxClient,
    read_devices,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._transition import _journal_row
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_apply import DEFAULT_INTERFACE_TYPE
from bm_lab import netbox_seed, sim
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
NETBOX_CPU, POSTGRES_CPU = "netbox (gunicorn)", "postgresql"  # components whose CPU is NetBox's cost
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


def stack_roots() -> dict[str, psutil.Process]:
    """The root process of each stack component (from the PID files under LAB)."""
    return {
        NETBOX_CPU: psutil.Process(int((LAB / "run" / "netbox.pid").read_text())),
        POSTGRES_CPU: psutil.Process(int((LAB / "postgres" / "postmaster.pid").read_text().split()[0])),
        "redis": psutil.Process(int((LAB / "run" / "redis.pid").read_text())),
    }


def netbox_cpu() -> dict[str, float]:
    """Cumulative CPU-seconds of NetBox's gunicorn and of PostgreSQL now."""
    roots = stack_roots()
    return {component: cpu_of_tree(roots[component]) for component in (NETBOX_CPU, POSTGRES_CPU)}


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
        return {"rulebook + ansible-playbook": psutil.Process(running.service.process.pid), **stack_roots()}

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


def netbox_writes(api: pynetbox.api, since: float) -> Counter[str]:
    """Objects NetBox's change log recorded since `since` (a Unix time), by `<changed object type> <action>`
    (`dcim.device update`, `extras.journalentry create`); their sum is every create, update and delete."""
    stamp = datetime.datetime.fromtimestamp(since, datetime.UTC).isoformat()
    changes = api.core.object_changes.filter(time_after=stamp, fields="changed_object_type,action", limit=1000)
    return Counter(f"{row['changed_object_type']} {row['action']['value']}" for row in map(dict, changes))


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


# --- The NetBox floor: NetBox's CPU per object of each kind the pipeline writes, written in bulk as the stages do.
# Per kind, one bulk request of COST_ROWS rows on scratch servers, COST_REPEATS times, on a freshly reset NetBox:
# gunicorn's and PostgreSQL's CPU per row (median) and the change-log entries a row makes. floor_rows reads a run's
# change log as rows of these kinds; their costs summed are the floor of the run's write mix.

COST_ROWS = 50  # rows per bulk request: the stages' batches
COST_REPEATS = 3
# a transition per repeat, in the order the pipeline takes them (one scratch server's state follows them)
TRANSITION_ORDER = ("discover", "claim_pxe_boot", "complete_validation", "start_hardening", "complete_hardening")
SETTLE_S = 0.2  # after the answer, before reading the CPU: what NetBox and PostgreSQL finish after answering


@dataclass(frozen=True)
class WriteKind:
    """A kind of bulk write of the pipeline: ``key``, the change-log entry (``<type> <action>``) that counts one of its
    rows in a run's change log; ``method`` and ``path``, its bulk request."""

    name: str
    key: str
    method: str
    path: str


# the order floor_rows reads a change log in: a kind's side effects are taken out before a later kind's key is counted
# (an interface POST with a MAC creates a dcim.macaddress, the key of the MAC PATCH)
WRITE_KINDS = (
    WriteKind("device PATCH (transition)", "dcim.device update", "PATCH", "/api/dcim/devices/"),
    WriteKind("journal entry POST", "extras.journalentry create", "POST", "/api/extras/journal-entries/"),
    WriteKind("interface POST (+ its MAC)", "dcim.interface create", "POST", "/api/dcim/interfaces/"),
    WriteKind("interface PATCH mac_address", "dcim.macaddress create", "PATCH", "/api/dcim/interfaces/"),
    WriteKind("cable POST", "dcim.cable create", "POST", "/api/dcim/cables/"),
    WriteKind("IP address POST", "ipam.ipaddress create", "POST", "/api/ipam/ip-addresses/"),
)


@dataclass
class WriteCost:
    """One kind's cost per row: ``ms`` of CPU by component (NETBOX_CPU, POSTGRES_CPU), ``entries`` the change-log
    entries one row makes, by ``<type> <action>``."""

    ms: dict[str, float]
    entries: dict[str, float]


@dataclass
class Scratch:
    """The scratch servers written to: their ids, BMC interfaces, a MAC-less data NIC per repeat, and a free switch
    port per cable."""

    servers: list[int]
    bmcs: list[int]
    nics: list[list[int]]  # [repeat][server]
    ports: list[int]


def mac(kind: int, repeat: int, index: int) -> str:
    """A locally administered MAC, unique per kind, repeat and server."""
    return f"02:00:00:{kind:02x}:{repeat:02x}:{index:02x}"


def scratch(client: NetBoxClient, rows: int, repeats: int) -> Scratch:
    """`rows` servers of the tenant in `staged` (in the site netbox_seed registers), each with a BMC and `repeats` data
    NICs without a MAC, and a switch with a port for each of their cables: a few bulk requests."""
    api = client.api
    netbox_seed.seed(api, [])  # site, manufacturers, device types, roles (get or create)
    site, role = api.dcim.sites.get(slug="dc1").id, api.dcim.device_roles.get(slug="server").id
    device_type = api.dcim.device_types.get(slug="proliant-dl360-gen10").id
    tenant = api.tenancy.tenants.get(slug=DEFAULT_TENANT).id
    base = {"device_type": device_type, "role": role, "site": site, "status": "active"}
    devices = [{**base, "name": f"nbcost{i:03d}", "tenant": tenant, "custom_fields": {"lifecycle_state": "staged"}}
               for i in range(rows)]  # fmt: skip
    made = client.post("/api/dcim/devices/", [*devices, {**base, "name": "nbcost-switch"}], timeout=600)
    servers, switch = [int(d["id"]) for d in made[:-1]], int(made[-1]["id"])
    names = ["ilo"] + [f"eno{r + 1}" for r in range(repeats)]
    nics = [
        {"device": s, "name": n, "type": "25gbase-x-sfp28", "mgmt_only": n == "ilo"} for n in names for s in servers
    ]
    ports = [{"device": switch, "name": f"Ethernet{p + 1}", "type": "25gbase-x-sfp28"} for p in range(rows * repeats)]
    ids = [int(i["id"]) for i in client.post("/api/dcim/interfaces/", nics + ports, timeout=600)]
    return Scratch(
        servers=servers,
        bmcs=ids[:rows],
        nics=[ids[(r + 1) * rows : (r + 2) * rows] for r in range(repeats)],
        ports=ids[len(nics) :],
    )


def bodies(client: NetBoxClient, objects: Scratch, repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Each kind's rows for one repeat, as the stages write them (the transition and its journal from _lifecycle)."""
    transition = TRANSITIONS[TRANSITION_ORDER[repeat]]
    records = read_devices(client, objects.servers)
    plans = [plan(records[s], transition, tenant=DEFAULT_TENANT) for s in objects.servers]
    n = len(objects.servers)
    return {
        "device PATCH (transition)": [{"id": p.device["id"], **p.patch} for p in plans],
        "journal entry POST": [
            _journal_row(int(p.device["id"]), journal_text(
                name=str(p.device["name"]), before=p.current, state=transition.target, reason=transition.meaning,
                actor="bench_pipeline", event_id=f"bench-{repeat}-{p.device['id']}", changed=p.after,
            ), transition.journal_kind)
            for p in plans
        ],
        "interface POST (+ its MAC)": [
            {"device": s, "name": f"nic{repeat}", "type": DEFAULT_INTERFACE_TYPE, "mac_address": mac(1, repeat, i),
             "enabled": True}
            for i, s in enumerate(objects.servers)
        ],
        "interface PATCH mac_address": [
            {"id": nic, "mac_address": mac(2, repeat, i)} for i, nic in enumerate(objects.nics[repeat])
        ],
        "cable POST": [
            {"a_terminations": [{"object_type": INTERFACE_OBJECT_TYPE, "object_id": nic}],
             "b_terminations": [{"object_type": INTERFACE_OBJECT_TYPE, "object_id": objects.ports[repeat * n + i]}],
             "status": "connected"}
            for i, nic in enumerate(objects.nics[repeat])
        ],
        "IP address POST": [
            {"address": f"10.99.{repeat}.{i + 1}/24", "status": "active", "description": "BMC address (DHCP lease)",
             "assigned_object_type": INTERFACE_OBJECT_TYPE, "assigned_object_id": bmc}
            for i, bmc in enumerate(objects.bmcs)
        ],
    }  # fmt: skip


def netbox_write_costs(
    settings: dict[str, str], rows: int = COST_ROWS, repeats: int = COST_REPEATS
) -> dict[str, WriteCost]:
    """Each kind's NetBox cost per row (by WRITE_KINDS name): one bulk request of `rows` rows per repeat, the median of
    the repeats. Leaves its scratch objects in NetBox: run it on a NetBox that is reset afterwards."""
    client = NetBoxClient(settings["NETBOX_API"], settings["NETBOX_TOKEN"], timeout=600, user_agent="bench netbox")
    objects = scratch(client, rows, repeats)
    samples: dict[str, list[dict[str, float]]] = {kind.name: [] for kind in WRITE_KINDS}
    entries: dict[str, Counter[str]] = {kind.name: Counter() for kind in WRITE_KINDS}
    for repeat in range(repeats):
        planned = bodies(client, objects, repeat)  # before any of them is written: the journal follows the PATCH
        for kind in WRITE_KINDS:
            since, before = time.time(), netbox_cpu()
            (client.patch if kind.method == "PATCH" else client.post)(kind.path, planned[kind.name], timeout=600)
            time.sleep(SETTLE_S)
            after = netbox_cpu()
            samples[kind.name].append({c: (after[c] - before[c]) * 1000 / rows for c in after})
            entries[kind.name] += netbox_writes(client.api, since)
    client.close()
    return {
        kind.name: WriteCost(
            ms={c: statistics.median(s[c] for s in samples[kind.name]) for c in (NETBOX_CPU, POSTGRES_CPU)},
            entries={entry: n / (rows * repeats) for entry, n in entries[kind.name].items()},
        )
        for kind in WRITE_KINDS
    }


def print_costs(costs: dict[str, WriteCost]) -> None:
    """The table of the costs per row."""
    print(f"floor: NetBox CPU per object written in bulk ({COST_ROWS} per request, median of {COST_REPEATS}), by kind:")
    print(f"  {'kind':<30} {'gunicorn ms':>11} {'PostgreSQL ms':>13}  change-log entries per object")
    for name, cost in costs.items():
        made = ", ".join(f"{entry} {n:g}" for entry, n in sorted(cost.entries.items()))
        print(f"  {name:<30} {cost.ms[NETBOX_CPU]:11.1f} {cost.ms[POSTGRES_CPU]:13.1f}  {made}")


def floor_rows(changes: Counter[str], costs: dict[str, WriteCost]) -> tuple[dict[str, float], Counter[str]]:
    """A change log read as rows of each kind (each kind counted by its key, its other entries taken out in WRITE_KINDS
    order), and the entries no kind explains."""
    left = Counter(changes)
    rows: dict[str, float] = {}
    for kind in WRITE_KINDS:
        rows[kind.name] = left[kind.key] / costs[kind.name].entries.get(kind.key, 1)
        for entry, per_row in costs[kind.name].entries.items():
            left[entry] = max(0, left[entry] - round(rows[kind.name] * per_row))
    return rows, +left


def print_netbox_floor(changes: Counter[str], costs: dict[str, WriteCost], cpu: dict[str, float], per: int) -> None:
    """The NetBox floor of one server for the run's write mix (its rows of each kind x the kind's CPU per row), against
    the NetBox and PostgreSQL CPU the run measured."""
    rows, unpriced = floor_rows(changes, costs)
    floor = {c: sum(n * costs[kind].ms[c] for kind, n in rows.items()) / 1000 / per for c in (NETBOX_CPU, POSTGRES_CPU)}
    mix = ", ".join(f"{name} {n / per:.2f}" for name, n in rows.items() if n)
    print(f"  write mix per server: {mix}")
    if unpriced:
        print("    not priced (no measured kind makes them): "
              + ", ".join(f"{change} {n / per:.2f}" for change, n in unpriced.most_common()))  # fmt: skip
    x = sum(floor.values())
    y = (cpu[NETBOX_CPU] + cpu[POSTGRES_CPU]) / per
    print(f"  NetBox floor for this run's write mix: {x:.2f} CPU-s per server (gunicorn {floor[NETBOX_CPU]:.2f} + "
          f"PostgreSQL {floor[POSTGRES_CPU]:.2f}: writes per server x cost per object, summed over kinds); "
          f"measured {y:.2f} (gunicorn {cpu[NETBOX_CPU] / per:.2f} + PostgreSQL {cpu[POSTGRES_CPU] / per:.2f}); "
          f"ratio {y / x if x else float('nan'):.2f}")  # fmt: skip


def bench_count(count: int, settings: dict[str, str], floors: tuple[float, float], costs: dict[str, WriteCost]) -> None:
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
    changes = netbox_writes(api, probe.started_at)
    writes = sum(changes.values())
    ours = {agent: n for agent, n in probe.requests.items() if agent.startswith("bm.lifecycle")}
    print(f"  NetBox requests {sum(ours.values()) / per:.1f}/server by the pipeline "
          f"({sum(probe.requests.values()) / per:.1f} with the sim's polls); writes {writes / per:.1f}/server "
          f"(change log); PG commits {probe.xacts / per:.0f}/server")  # fmt: skip
    for agent, n in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"    {agent:<44} {n / per:6.2f}/server")
    print("  NetBox writes per server by object type (change log):")
    for change, n in sorted(changes.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {change:<44} {n / per:6.2f}/server")
    print(f"  playbook runs {probe.recaps} ({probe.recaps / per:.2f}/server)")
    patch_s, playbook_cpu = floors
    netbox_floor = patch_s * writes / per
    wall_per_server = span / per
    print(f"  floor NetBox: {writes / per:.1f} writes x {patch_s * 1000:.0f} ms = {netbox_floor:.2f} s/server; "
          f"pipeline wall per server {wall_per_server:.2f} s = {wall_per_server / netbox_floor:.1f}x")  # fmt: skip
    print_netbox_floor(changes, costs, probe.cpu, per)
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
    costs = netbox_write_costs(settings)
    print_costs(costs)
    patch_s = patch_latency(settings)
    playbook_wall, playbook_cpu = playbook_start_cost()
    print(f"floor: NetBox PATCH p50 {patch_s * 1000:.1f} ms; one ansible-playbook start: {playbook_wall:.2f} s wall, "
          f"{playbook_cpu:.2f} CPU-s")  # fmt: skip
    for count in counts(large):
        bench_count(count, settings, (patch_s, playbook_cpu), costs)
    subprocess.run([STACK_SH, "reset"], check=True, capture_output=True)
