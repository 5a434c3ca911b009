"""bm-lab-chaos: the bm-lab-sim pipeline while things break, then what must still hold.

During a `bm_lab.sim` run of N servers, on a schedule drawn from one seeded random generator (the seed is printed):
the rulebook service is SIGKILLed (with every process it started, as systemd's control-group kill does) and started
again K times; the stack's Redis is restarted (SIGTERM: AOF flushed) R times and NetBox is stopped for some seconds
and started again, both through the PID files and `scripts/stack.sh up` of the stack; a fifth of the Redfish requests
of every other BMC answer 503 or stall (the mock's `share_503` / `share_stall`, half each); one server's
BMC never answers. Afterwards `verify` checks, through raw readers (pynetbox, Redis, the mock's counters, the log
files), that the pipeline lost nothing and did nothing twice.

    set -a; . .lab/stack.env; set +a; .venv/bin/bm-lab-chaos --count 50 --kills 5 --redis-restarts 2 --netbox-seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pynetbox
import redis

from bm_lab import sim

STACK_SH = sim.ROOT / "scripts" / "stack.sh"
BMC_STALL_MS = 2000  # how long a stalled BMC request is held before it is answered
DRAIN_S = 180.0  # after the last fault, the bus must drain (nothing pending) within this
CHAIN = {  # event type -> the event type its causation_id must name
    "device_discovered": "dhcp_lease",
    "pxe_boot_initiated": "device_discovered",
    "validation_completed": "validation_report",
    "hardening_completed": "validation_completed",
}
TRANSITION = re.compile(r"lifecycle_state (\S+ -> \S+)\*\*")  # the journal line lifecycle_transition writes
LIVE_CHAIN = ("device_discovered", "pxe_boot_initiated", "validation_report", "validation_completed",
              "hardening_completed")  # fmt: skip


def lab_dir() -> Path:
    """The stack's lab directory (BM_LAB_DIR, as scripts/lib.sh reads it)."""
    return Path(os.environ.get("BM_LAB_DIR") or sim.ROOT / ".lab")


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: what, when (seconds after the service started) and for how long."""

    at: float
    kind: str  # rulebook_kill | redis_restart | netbox_stop
    seconds: float


@dataclass
class Plan:
    """Everything random about a run, drawn from one seed."""

    seed: int
    faults: list[Fault]
    dead_index: int
    dead_mode: str  # drop: every connection closed unanswered; stall: accepted, never answered
    bmc_fault_ratio: float

    def describe(self) -> str:
        """The plan, one line per fault."""
        lines = [f"chaos seed {self.seed}: BMC {self.dead_index} dead ({self.dead_mode}), "
                 f"{self.bmc_fault_ratio:.0%} of the other BMCs' requests 503 or stalled"]  # fmt: skip
        lines += [f"  t+{f.at:6.1f} s  {f.kind} ({f.seconds:.1f} s)" for f in self.faults]
        return "\n".join(lines)


def make_plan(seed: int, args: argparse.Namespace) -> Plan:
    """K rulebook kills in [5 s, horizon]; R Redis restarts and one NetBox stop from 10 s on (after the leases)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not cryptography
    horizon = args.horizon
    faults = [
        Fault(round(rng.uniform(5, horizon), 1), "rulebook_kill", round(rng.uniform(1, 5), 1))
        for _ in range(args.kills)
    ]
    faults += [Fault(round(rng.uniform(10, horizon), 1), "redis_restart", 0.0) for _ in range(args.redis_restarts)]
    if args.netbox_seconds > 0:
        at = rng.uniform(10, max(10.0, horizon - args.netbox_seconds))
        faults.append(Fault(round(at, 1), "netbox_stop", args.netbox_seconds))
    dead = rng.randrange(args.count)
    return Plan(seed, sorted(faults, key=lambda f: f.at), dead, args.dead_mode, args.bmc_fault_ratio)


def stop_by_pidfile(pidfile: Path, timeout: float = 40.0) -> int:
    """SIGTERM the stack process of a PID file and wait until it is gone (SIGKILL at `timeout`); returns its PID."""
    pid = int(pidfile.read_text().split()[0])
    process = psutil.Process(pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(10)
    return pid


def stack_up() -> None:
    """`scripts/stack.sh up`: starts whatever of the stack is not running (the same lab directory and ports)."""
    subprocess.run([str(STACK_SH), "up"], check=True, capture_output=True, timeout=300)  # noqa: S603


@dataclass
class Chaos:
    """The `during` hook of `sim.run`: applies a plan while the pipeline runs; `timeline` says what happened when."""

    plan: Plan
    timeline: list[str] = field(default_factory=list)
    bmc_passwords: list[str] = field(default_factory=list)
    undrained: dict[str, int] = field(default_factory=dict)
    _t0: float = 0.0

    def note(self, what: str) -> None:
        """Record (and print) one fault event with its time since the start."""
        line = f"t+{time.monotonic() - self._t0:6.1f} s  {what}"
        self.timeline.append(line)
        print(f"chaos: {line}", flush=True)

    @contextlib.contextmanager
    def __call__(self, running: sim.SimRun) -> Iterator[Chaos]:
        """Kill the dead BMC, make the others flaky, start the schedule; on exit finish it, clear the faults."""
        self._t0 = time.monotonic()
        dead = self.plan.dead_index
        never = {"drop_count": 10**9} if self.plan.dead_mode == "drop" else {"latency_ms": 10**9}
        running.fleet.set_faults(dead, **never)
        self.note(f"BMC {running.servers[dead].name} ({running.servers[dead].bmc.address}) never answers: {never}")
        half = self.plan.bmc_fault_ratio / 2
        flaky = {"share_503": half, "share_stall": half, "stall_ms": BMC_STALL_MS}
        for index in range(len(running.servers)):
            if index != dead:
                running.fleet.set_faults(index, **flaky)
        self.note(f"every other BMC flaky: {flaky}")
        schedule = threading.Thread(target=self.run_schedule, args=(running,), name="chaos-schedule")
        schedule.start()
        try:
            yield self
        finally:
            schedule.join()
            self.clear_bmcs(running)
            self.note("schedule done, BMC faults cleared")
            self.undrained = drain(running.env["BM_REDIS_URL"], DRAIN_S)
            self.note(f"bus drained: {not self.undrained} {self.undrained or ''}")

    def clear_bmcs(self, running: sim.SimRun) -> None:
        """Clear the faults of every live BMC and note every BMC's account passwords (retried while one resets)."""
        for index in range(len(running.servers)):
            for attempt in range(10):
                try:
                    if index != self.plan.dead_index:
                        running.fleet.clear_faults(index)
                    accounts = running.fleet.state(index)["Accounts"]
                    break
                except OSError:
                    if attempt == 9:
                        raise
                    time.sleep(1)
            self.bmc_passwords += [a["Password"] for a in accounts if a.get("Password")]

    def run_schedule(self, running: sim.SimRun) -> None:
        """Each fault of the plan at its time, one after the other (a failed one is noted, the next still runs)."""
        for fault in self.plan.faults:
            time.sleep(max(0.0, self._t0 + fault.at - time.monotonic()))
            try:
                self.apply(fault, running)
            except (OSError, subprocess.SubprocessError, psutil.Error) as exc:
                stderr = getattr(exc, "stderr", b"") or b""
                self.note(f"{fault.kind} FAILED: {exc!r} {stderr.decode(errors='replace')[-500:]}")

    def apply(self, fault: Fault, running: sim.SimRun) -> None:
        """One fault, and the restart that ends it."""
        lab = lab_dir()
        if fault.kind == "rulebook_kill":
            pid = running.service.kill()
            self.note(f"rulebook pid {pid} SIGKILLed (with its process tree)")
            time.sleep(fault.seconds)
            running.service.start()
            self.note(f"rulebook started again (pid {running.service.process.pid if running.service.process else 0})")
        elif fault.kind == "redis_restart":
            self.note("Redis: SIGTERM (PID file)")
            pid = stop_by_pidfile(lab / "run" / "redis.pid")
            self.note(f"Redis pid {pid} stopped")
            stack_up()
            self.note("Redis started again (stack.sh up)")
        else:
            self.note("NetBox gunicorn: SIGTERM (PID file)")
            pid = stop_by_pidfile(lab / "run" / "netbox.pid")
            self.note(f"NetBox gunicorn pid {pid} stopped; down for {fault.seconds:.0f} s, then stack.sh up")
            time.sleep(fault.seconds)
            stack_up()
            self.note("NetBox started again (stack.sh up)")


def drain(redis_url: str, timeout: float) -> dict[str, int]:
    """Wait until no entry of the bus is pending (delivered, not acknowledged); what is still pending at `timeout`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout
    pending: dict[str, int] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            pending = {
                f"{stream} {group['name']}": group["pending"]
                for stream in client.scan_iter("bm:events:*")
                if client.type(stream) == "stream"
                for group in client.xinfo_groups(stream)
                if group["pending"]
            }
            if not pending:
                break
        time.sleep(2)
    client.close()
    return pending


# --- verification ------------------------------------------------------------------------------------------------


def bus_entries(client: redis.Redis) -> list[tuple[str, str, dict[str, Any]]]:
    """(stream, entry id, envelope) of every envelope on the bus's streams, the dead-letter stream included."""
    entries = []
    for stream in sorted(client.scan_iter("bm:events:*")):
        if client.type(stream) != "stream":
            continue
        for entry_id, fields in client.xrange(stream) or []:
            for value in (fields or {}).values():
                with contextlib.suppress(ValueError, TypeError):
                    envelope = json.loads(value)
                    if isinstance(envelope, dict) and "event_id" in envelope:
                        entries.append((str(stream), str(entry_id), envelope))
    return entries


def check_states(api: pynetbox.api, result: sim.SimResult, dead: int) -> list[str]:
    """Every live server monitored; the dead one provisioning_failed with a journal entry that says so."""
    problems = [f"{row['name']}: {row['state']}" for i, row in enumerate(result.rows)
                if i != dead and row["state"] != "monitored"]  # fmt: skip
    if result.rows[dead]["state"] != "provisioning_failed":
        problems.append(f"dead {result.rows[dead]['name']}: {result.rows[dead]['state']}, not provisioning_failed")
    journal = api.extras.journal_entries.filter(assigned_object_type="dcim.device",
                                                assigned_object_id=result.servers[dead].device_id)  # fmt: skip
    if not any("provisioning_failed" in entry.comments for entry in journal):
        problems.append(f"dead {result.rows[dead]['name']}: no journal entry saying provisioning_failed")
    return problems


def check_events(client: redis.Redis, result: sim.SimResult, chaos: Chaos, leases: int) -> list[str]:
    """Every lease is on the bus, every entry was acknowledged before the renewals (the bus drained after the last
    fault), every live server has its whole chain by causation_id."""
    dead = chaos.plan.dead_index
    entries = bus_entries(client)
    problems = [f"dead letter: {e}" for s, _i, e in entries if s == "bm:events:dead_letter"]
    problems += [f"{what}: {n} entries never acknowledged" for what, n in chaos.undrained.items()]
    events = [e for s, _i, e in entries if s != "bm:events:dead_letter"]
    by_id = {e["event_id"]: e for e in events}
    lease_count = sum(e["event_type"] == "dhcp_lease" for e in events)
    if lease_count != leases:
        problems.append(f"{lease_count} dhcp_lease events on the bus, {leases} published by the hook")
    for index, server in enumerate(result.servers):
        mine = [e for e in events if (e.get("device") or {}).get("id") == server.device_id]
        types = Counter(e["event_type"] for e in mine)
        wanted = ("device_discovered", "stage_failed") if index == dead else LIVE_CHAIN
        problems += [f"{server.name}: {types[t]} {t} events" for t in wanted if types[t] != 1]
        for event in mine:
            cause = by_id.get(event.get("causation_id") or "")
            want = CHAIN.get(event["event_type"]) or (
                "device_discovered" if event["event_type"] == "stage_failed" else None
            )
            if want and (cause is None or cause["event_type"] != want):
                problems.append(f"{server.name}: {event['event_type']} {event['event_id']} not caused by a {want}")
    return problems


def check_netbox(api: pynetbox.api, result: sim.SimResult) -> list[str]:
    """No duplicate IP, MAC, cable, nor journal entry for one transition of one device."""
    problems = []
    ips = Counter(ip.address.split("/")[0] for ip in api.ipam.ip_addresses.all())
    macs = Counter(m.mac_address.lower() for m in api.dcim.mac_addresses.all())
    problems += [f"IP {ip} {n} times" for ip, n in ips.items() if n > 1]
    problems += [f"MAC {mac} {n} times" for mac, n in macs.items() if n > 1]
    ends: Counter[tuple[str, int]] = Counter()
    for cable in api.dcim.cables.all():
        for side in (cable.a_terminations, cable.b_terminations):
            for end in side:
                ends[(end.object_type, end.object_id)] += 1
    problems += [f"{end} terminates {n} cables" for end, n in ends.items() if n > 1]
    for server in result.servers:
        journal = api.extras.journal_entries.filter(
            assigned_object_type="dcim.device", assigned_object_id=server.device_id
        )
        comments = Counter(transition_of(entry.comments) for entry in journal)
        problems += [f"{server.name}: {n} journal entries for {t}" for t, n in comments.items() if t and n > 1]
    return problems


def transition_of(comments: str) -> str:
    """The `from -> to` a journal entry records ('' if none)."""
    found = TRANSITION.search(comments or "")
    return found.group(1) if found else ""


def check_counters(result: sim.SimResult, dead: int) -> list[str]:
    """Exactly one PXE boot and one reset per live server; the dead one never reset."""
    problems = []
    for index, (server, counters) in enumerate(zip(result.servers, result.counters, strict=True)):
        want = 0 if index == dead else 1
        resets = sum(counters["resets"].values())
        if counters["pxe_boots"] != want or resets != want:
            problems.append(f"{server.name}: {counters['pxe_boots']} PXE boots, {resets} resets (want {want})")
    return problems


def run_secrets(result: sim.SimResult, bmc_passwords: list[str]) -> dict[str, str]:
    """The secrets of the run: every BMC account password (factory and rotated), the NetBox token and admin password,
    the vault password, the validation tokens."""
    token = os.environ.get("NETBOX_TOKEN", "")
    found = {
        "bmc password": result.bmc_password,
        "vault password": (result.workdir / "vault-password").read_text().strip(),
        "netbox token": token,
        "netbox token secret": token.rsplit(".", 1)[-1],
        "netbox admin password": os.environ.get("NETBOX_ADMIN_PASSWORD", ""),
    }
    found |= {f"bmc account password {n}": value for n, value in enumerate(sorted(set(bmc_passwords)))}
    for server in result.servers:
        for n, value in enumerate(server.tokens):
            found[f"validation token {server.name} #{n + 1}"] = value
    return {name: value for name, value in found.items() if len(value) >= 8}


def check_secrets(client: redis.Redis, result: sim.SimResult, found: dict[str, str]) -> list[str]:
    """No secret in any log of the run (service, stack), nor in any event on the bus."""
    texts = {str(p): p.read_text(errors="replace") for p in (result.workdir / "logs").glob("*")}
    texts |= {str(p): p.read_text(errors="replace") for p in (lab_dir() / "logs").glob("*.log")}
    texts["the event bus"] = json.dumps([e for _s, _i, e in bus_entries(client)])
    return [f"{name} in {where}" for where, text in texts.items() for name, value in found.items() if value in text]


def verify(
    api: pynetbox.api, client: redis.Redis, result: sim.SimResult, chaos: Chaos, leases: int
) -> dict[str, list[str]]:
    """Every check by name -> its problems (all empty: the run passed)."""
    dead = chaos.plan.dead_index
    return {
        "end states": check_states(api, result, dead),
        "events": check_events(client, result, chaos, leases),
        "netbox duplicates": check_netbox(api, result),
        "pxe resets": check_counters(result, dead),
        "secrets": check_secrets(client, result, run_secrets(result, chaos.bmc_passwords)),
    }


@dataclass
class ChaosResult:
    """A chaos run: the sim's result, the plan, what happened when, and the checks."""

    sim: sim.SimResult
    plan: Plan
    chaos: Chaos
    problems: dict[str, list[str]]

    @property
    def live_counters(self) -> list[dict[str, Any]]:
        """The mock's counters of every BMC but the dead one."""
        return [c for index, c in enumerate(self.sim.counters) if index != self.plan.dead_index]

    @property
    def bmc_fault_share(self) -> float:
        """Of the live BMCs' Redfish requests judged while they were flaky, the share answered 503 or stalled."""
        faulted = sum(c["injected_503"] + c["injected_stalls"] for c in self.live_counters)
        return faulted / max(1, sum(c["share_requests"] for c in self.live_counters))

    def bmc_share_misses(self) -> list[str]:
        """Live BMCs whose 503s or stalls are not round(share * requests) within one (the mock's shares are exact)."""
        half = self.plan.bmc_fault_ratio / 2
        return [
            f"BMC {index}: {c['injected_503']} 503s, {c['injected_stalls']} stalls in {c['share_requests']} requests"
            for index, c in enumerate(self.live_counters)
            if abs(c["injected_503"] - half * c["share_requests"]) > 1
            or abs(c["injected_stalls"] - half * c["share_requests"]) > 1
        ]


def run(args: argparse.Namespace) -> ChaosResult:
    """One sim run under the plan drawn from `args.chaos_seed`, then every check."""
    seed = args.chaos_seed if args.chaos_seed is not None else secrets.randbelow(2**31)
    plan = make_plan(seed, args)
    print(plan.describe(), flush=True)
    chaos = Chaos(plan)
    client = redis.Redis.from_url(os.environ["BM_REDIS_URL"], decode_responses=True)
    result = sim.run(args, during=chaos)
    api = pynetbox.api(os.environ["NETBOX_API"], token=os.environ["NETBOX_TOKEN"])
    leases = args.count * (2 if args.renewal else 1)
    problems = verify(api, client, result, chaos, leases)
    client.close()
    return ChaosResult(result, plan, chaos, problems)


def report(outcome: ChaosResult) -> None:
    """Print the seed, the fault timeline, the sim's timeline and every check's problems."""
    print(f"\nchaos seed {outcome.plan.seed}; fault timeline:")
    print("\n".join(f"  {line}" for line in outcome.chaos.timeline))
    live = outcome.live_counters
    print(f"  BMC faults: {sum(c['injected_503'] for c in live)} 503s and {sum(c['injected_stalls'] for c in live)} "
          f"stalls, {outcome.bmc_fault_share:.1%} of the live BMCs' Redfish requests while flaky")  # fmt: skip
    sim.print_timeline(outcome.sim.rows)
    for name, problems in outcome.problems.items():
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems[:20]:
            print(f"  {problem}")


def build_parser() -> argparse.ArgumentParser:
    """bm-lab-sim's options plus the chaos ones."""
    parser = sim.build_parser()
    parser.description = __doc__
    group = parser.add_argument_group("chaos")
    group.add_argument("--chaos-seed", type=int, help="seed of the fault schedule (default: a fresh one, printed)")
    group.add_argument("--kills", type=int, default=5, help="rulebook SIGKILLs (default 5)")
    group.add_argument("--netbox-seconds", type=float, default=30, help="NetBox outage, seconds (0: none)")
    group.add_argument("--horizon", type=float, default=300, help="faults happen within this many seconds")
    group.add_argument("--dead-mode", choices=("drop", "stall"), default="stall", help="how the dead BMC never answers")
    group.add_argument("--redis-restarts", type=int, default=2, help="Redis restarts (default 2)")
    group.add_argument(
        "--bmc-fault-ratio",
        type=float,
        default=0.2,
        help=f"share of every live BMC's Redfish requests answering 503 (half) or stalling {BMC_STALL_MS} ms (half)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (`bm-lab-chaos --help`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bm-lab-chaos %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    sim.check_args(parser, args)
    if min(args.kills, args.redis_restarts, args.netbox_seconds) < 0:
        parser.error("--kills, --redis-restarts and --netbox-seconds must not be negative")
    if not 0 <= args.bmc_fault_ratio <= 1:
        parser.error(f"--bmc-fault-ratio {args.bmc_fault_ratio}: must be between 0 and 1")
    outcome = run(args)
    report(outcome)
    return 0 if not any(outcome.problems.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
