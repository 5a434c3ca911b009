"""Event bus numbers: publish latency, event -> stage playbook at idle, the DHCP hook's cost (the hook alone, and
what it adds to a lease answered by ISC dhcpd and by Kea), events/s through the source into the rulebook, and stage
runs/s vs servers/s for a burst of dhcp_lease events with batching off and on.

Runs against a private redis-server (loopback, AOF everysec like the stack) and the real ansible-rulebook; every loop is
bounded in count and time. `large` raises the counts and time bounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import publish
from bm_lab import lab
from bm_lab.netns import Netns, Relays, in_netns
from integration.events.redis_server import RedisServer
from integration.events.rulebook import Rulebook

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "collections/ansible_collections/bm/lifecycle/files/dhcp_hook.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

NOOP_RULEBOOK = """---
- name: bench-noop
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        event_types: [dhcp_lease]
        consumer: bench
        batch_size: {batch_size}
        batch_wait_ms: 50
        max_batches_in_flight: 0
  rules:
    - name: last
      condition: event.entries[-1].envelope.data.last == true
      action:
        debug:
          msg: BENCH-DONE
    - name: no-op
      condition: event.entries[-1].envelope.data.last == false
      action:
        none:
"""

STAGE = """---
- name: Trivial stage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Publish the follow-ups and acknowledge the batch
      bm.lifecycle.event_publish:
        source: bench.stage
        events: >-
          {%- set out = [] -%}
          {%- for e in bm_batch.entries -%}
          {%- set _ = out.append({'event_type': 'device_discovered', 'cause': e.envelope, 'data': {}}) -%}
          {%- endfor -%}
          {{ out }}
        ack: "{{ bm_batch.entries }}"
"""

STAMPED_STAGE = """---
- name: Stamped stage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Record when the stage's first task ran (templated on the controller, before the module runs)
      ansible.builtin.copy:
        dest: "{{ bm_stamp_dir }}/{{ bm_batch.entries[0].envelope.event_id }}"
        content: "{{ now(utc=true).timestamp() }}"
        mode: "0600"
""" + STAGE.split("  tasks:\n", 1)[1]

STAGE_RULEBOOK = """---
- name: bench-stage
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        event_types: [dhcp_lease]
        consumer: bench
        batch_size: {batch_size}
        batch_wait_ms: 250
  rules:
    - name: stage
      condition: event.event_type == "dhcp_lease"
      action:
        run_playbook:
          name: {stage}
          extra_vars:
            bm_batch: "{{{{ event }}}}"
            bm_stamp_dir: {stamps}
"""


def lease(n: int, last: bool = False) -> dict[str, object]:
    return env.new_event("dhcp_lease", {"ip": f"10.0.{n // 250}.{n % 250 + 1}", "n": n, "last": last}, source="bench")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_publish(client: RedisClient, n: int) -> None:
    times = []
    for i in range(n):
        e = lease(i)
        t = time.perf_counter()
        publish(client, [e])
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"publish (WATCH + MULTI/EXEC with dedupe), {n} calls: p50 {pct(times, 50):.2f} ms, p99 {pct(times, 99):.2f} ms"
    )


def bench_hook(url: str, spool: Path, n: int, hook: Path = HOOK) -> list[float]:
    """ISC dhcpd's cost of one lease: dhcpd's execute() waits for the hook, from process start to exit (Redis up,
    the spool empty). Returns the times in ms."""
    environ = {"PATH": "/usr/bin:/bin", "BM_REDIS_URL": url, "BM_HOOK_SPOOL": str(spool), "BM_HOOK_CONFIG": "/none"}
    times = []
    for i in range(n):
        t = time.perf_counter()
        subprocess.run(
            [PYTHON, "-S", str(hook), f"10.9.0.{i % 250 + 1}", f"52:54:0:9:{i // 256:x}:{i % 256:x}", f"ilo-{i}"],
            env=environ, capture_output=True, timeout=10, check=False,
        )  # fmt: skip
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"dhcp hook, ISC dhcpd entry ({PYTHON} -S, process start to exit; dhcpd waits for it), {n} calls: "
        f"median {statistics.median(times):.1f} ms, p95 {pct(times, 95):.1f} ms, max {max(times):.1f} ms"
    )
    return times


def bench_hook_burst(url: str, spool: Path, n: int) -> None:
    """A burst: `n` leases' hooks started at once, as a DHCP server does when a rack powers on. Every event must reach
    the stream without waiting for a later lease (the spool hand-over); prints what reached Redis and what the spool
    still holds once every hook has exited."""
    environ = {"PATH": "/usr/bin:/bin", "BM_REDIS_URL": url, "BM_HOOK_SPOOL": str(spool), "BM_HOOK_CONFIG": "/none"}
    with RedisClient(RedisSettings(url)) as c:
        c.call("DEL", "bm:events:dhcp_lease")
    t = time.perf_counter()
    argv = [[PYTHON, "-S", str(HOOK), f"10.8.{i // 250}.{i % 250 + 1}", f"52:54:0:8:{i // 256:x}:{i % 256:x}"]
            for i in range(n)]  # fmt: skip
    procs = [subprocess.Popen(a, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for a in argv]
    for proc in procs:
        proc.wait(timeout=30)
    elapsed = (time.perf_counter() - t) * 1000
    with RedisClient(RedisSettings(url)) as c:
        published = int(c.call("XLEN", "bm:events:dhcp_lease") or 0)
    left = len(list(spool.glob("*.json")))
    print(f"dhcp hook, burst of {n} at once: {published} published, {left} left in the spool for a later call, "
          f"all exited in {elapsed:.0f} ms")  # fmt: skip


DHCP_NET = "10.79.0"
CLIENT_MAC = "94:40:c9:5e:79:01"


class DhcpClient:
    """A DHCPv4 client on a UDP socket inside a namespace (broadcast flag set: the server broadcasts its answers, which
    reach an interface without an address) that times each answer: DISCOVER -> OFFER and REQUEST -> ACK."""

    def __init__(self, ns: str, interface: str, mac: str) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.bind(("0.0.0.0", 68))  # a DHCP client, inside our own namespace
            return sock

        self.sock = in_netns(ns, make)
        self.sock.settimeout(3)
        self.chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)

    def close(self) -> None:
        self.sock.close()

    def packet(self, xid: int, kind: int, extra: bytes = b"") -> bytes:
        head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                           bytes(4), self.chaddr, bytes(64), bytes(128))  # fmt: skip
        options = bytes([53, 1, kind]) + extra + bytes([12, 9]) + b"ilo-bench" + bytes([55, 3, 1, 3, 51, 255])
        return head + b"\x63\x82\x53\x63" + options

    def answer(self, xid: int, want: int) -> tuple[bytes, bytes]:
        """(yiaddr, server id) of the next answer of type `want` to `xid`."""
        while True:
            data, _peer = self.sock.recvfrom(4096)
            if len(data) < 240 or data[0] != 2 or struct.unpack("!I", data[4:8])[0] != xid:
                continue
            options, i = {}, 240
            while i < len(data) and data[i] != 255:
                if data[i] == 0:
                    i += 1
                    continue
                options[data[i]] = data[i + 2 : i + 2 + data[i + 1]]
                i += 2 + data[i + 1]
            if options.get(53) == bytes([want]):
                return data[16:20], options.get(54, b"")

    def lease(self, attempts: int = 1) -> tuple[float, float]:
        """One lease; the time in ms from DISCOVER to OFFER and from REQUEST to ACK."""
        for _attempt in range(attempts - 1):
            with contextlib.suppress(TimeoutError):
                return self.lease()
        xid = secrets.randbits(32)
        t0 = time.perf_counter()
        self.sock.sendto(self.packet(xid, 1), ("255.255.255.255", 67))
        offered, server_id = self.answer(xid, 2)
        t1 = time.perf_counter()
        request = bytes([50, 4]) + offered + bytes([54, 4]) + server_id
        t2 = time.perf_counter()
        self.sock.sendto(self.packet(xid, 3, request), ("255.255.255.255", 67))
        self.answer(xid, 5)
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t3 - t2) * 1000


def dhcp_server_conf(kind: str, run: Path, hook: str) -> list[str]:
    """Write the configuration of ISC dhcpd or Kea serving one subnet on `lan`; its argv. `hook`: `off`, `hook` (the
    project's hook) or, for Kea, `empty` (run_script running a script that exits at once: what Kea's spawn costs)."""
    if kind == "isc":
        conf = run / f"dhcpd-{hook}.conf"
        include = ""
        if hook == "hook":
            (run / "bm-lifecycle-hook.conf").write_text(lab.hook_conf())
            include = f'include "{run / "bm-lifecycle-hook.conf"}";\n'
        conf.write_text(
            "authoritative;\nddns-update-style none;\nping-check false;\ndefault-lease-time 600;\n"
            f"subnet {DHCP_NET}.0 netmask 255.255.255.0 {{ range {DHCP_NET}.100 {DHCP_NET}.199; }}\n{include}"
        )
        (run / "dhcpd.leases").write_text("")
        return ["/usr/sbin/dhcpd", "-4", "-f", "-d", "-cf", str(conf), "-lf", str(run / "dhcpd.leases"),
                "-pf", str(run / "dhcpd.pid"), "lan"]  # fmt: skip
    (run / "kea-hook").write_text(lab.kea_hook_wrapper(run / "dhcp-hook.conf") if hook == "hook" else "#!/bin/sh\n")
    (run / "kea-hook").chmod(0o755)
    stanza = json.loads(lab.KEA_STANZA.read_text())
    stanza["parameters"]["name"] = str(run / "kea-hook")
    config = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": ["lan"], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "name": str(run / f"kea-leases-{hook}.csv"), "lfc-interval": 0},
            "valid-lifetime": 600,
            "subnet4": [
                {"id": 1, "subnet": f"{DHCP_NET}.0/24", "pools": [{"pool": f"{DHCP_NET}.100 - {DHCP_NET}.199"}]}
            ],
            "hooks-libraries": [stanza] if hook != "off" else [],
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}],
        }
    }
    conf = run / f"kea-dhcp4-{hook}.conf"
    conf.write_text(json.dumps(config))
    return [lab.KEA_DHCP4, "-c", str(conf)]


DHCP_LABEL = {"isc": "ISC dhcpd", "kea": "Kea"}
HOOK_LABEL = {"off": ", no hook", "hook": " + the hook", "empty": " + an empty script"}
STARTED = {"isc": "Server starting service", "kea": "DHCP4_STARTED"}


def measure_dhcp(
    net: Netns, run: Path, server: RedisServer, env: dict[str, str], kind: str, hook: str, n: int
) -> list[float]:
    """Start the DHCP server `kind` with `hook`, time `n` leases of one client, stop it; the REQUEST -> ACK times."""
    srv, cli = f"{net.prefix}-srv", f"{net.prefix}-cli"
    proc = net.spawn(srv, dhcp_server_conf(kind, run, hook), f"{kind}-{hook}.log", env=env)
    try:
        started, log_file, deadline = STARTED[kind], run / "logs" / f"{kind}-{hook}.log", time.monotonic() + 30
        while started not in log_file.read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{DHCP_LABEL[kind]} did not start: {log_file.read_text()[-800:]}")
            time.sleep(0.1)
        with RedisClient(RedisSettings(server.url)) as c:
            before = int(c.call("XLEN", "bm:events:dhcp_lease") or 0)
        client = DhcpClient(cli, "eth0", CLIENT_MAC)
        offers, acks = [], []
        try:
            client.lease(attempts=3)  # the first lease of this server: not measured
            for _lease in range(n):
                time.sleep(0.1)  # Kea's hook of the previous lease is done: it takes no CPU from this one
                offer, ack = client.lease()
                offers.append(offer)
                acks.append(ack)
        finally:
            client.close()
        time.sleep(1)  # Kea's hook runs after the answer: let the last one publish
        with RedisClient(RedisSettings(server.url)) as c:
            published = int(c.call("XLEN", "bm:events:dhcp_lease") or 0) - before
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        f"{DHCP_LABEL[kind]}{HOOK_LABEL[hook]}, {n} leases: REQUEST -> ACK median {statistics.median(acks):.2f} ms, "
        f"p95 {pct(acks, 95):.2f} ms, max {max(acks):.2f} ms; DISCOVER -> OFFER median {statistics.median(offers):.2f} "
        f"ms, max {max(offers):.2f} ms; {published} dhcp_lease event(s) published"
    )
    return acks


def bench_dhcp_servers(server: RedisServer, work: Path, n: int) -> None:
    """What the hook adds to a lease as the client sees it, ISC dhcpd (execute() waits for the hook before it sends
    the ACK) against Kea (run_script starts the script and answers without waiting for it, but starts it in the
    packet's own processing: a fork and exec per hook point; a renewal's REQUEST reaches two, lease4_renew and
    leases4_committed). The time from the client's REQUEST to the server's ACK, every lease a renewal of the same
    client, 0.1 s apart (whether the hook delays an answer, not what its CPU takes from a busy server); Kea also with
    an empty script, which separates Kea's cost of starting any script from the hook's own."""
    missing = [] if os.geteuid() == 0 else ["root"]
    missing += [t for t in ("/usr/sbin/dhcpd", lab.KEA_DHCP4) if not Path(t).exists()]
    if missing:
        print(f"DHCP servers with the hook: skipped, this machine lacks {', '.join(missing)}")
        return
    run = work / "dhcp"
    (run / "logs").mkdir(parents=True, exist_ok=True)
    (run / "dhcp-hook.conf").write_text(f"BM_REDIS_URL={server.url}\nBM_HOOK_SPOOL={run / 'spool'}\n")
    net, relays = Netns(f"bmb{os.getpid() % 100000:x}", run / "logs"), Relays()
    try:
        srv, cli = net.add("srv"), net.add("cli")
        net.veth(cli, "eth0", srv, "lan", mac_a=CLIENT_MAC)
        net.ip(srv, "addr", "add", f"{DHCP_NET}.1/24", "dev", "lan")
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        relays.add(srv, ("127.0.0.1", port), ("127.0.0.1", port))  # the hook reaches the bench's Redis
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run),
               "BM_HOOK_CONFIG": str(run / "dhcp-hook.conf")}  # fmt: skip
        acks = {
            (kind, hook): measure_dhcp(net, run, server, env, kind, hook, n)
            for kind, hook in (("isc", "off"), ("isc", "hook"), ("kea", "off"), ("kea", "empty"), ("kea", "hook"))
        }
        for kind, hook, base, what in (("isc", "hook", "off", "the hook delays ISC dhcpd's ACK"),
                                       ("kea", "hook", "off", "the hook delays Kea's ACK"),
                                       ("kea", "empty", "off", "  of which Kea starting a script (any script)"),
                                       ("kea", "hook", "empty", "  of which the hook's own work")):  # fmt: skip
            added = statistics.median(acks[(kind, hook)]) - statistics.median(acks[(kind, base)])
            added95 = pct(acks[(kind, hook)], 95) - pct(acks[(kind, base)], 95)
            print(f"{what}: {added:+.2f} ms median, {added95:+.2f} ms p95")
    finally:
        relays.close()
        net.close()


def bench_noop(server: RedisServer, work: Path, n: int, batch_size: int, limit_s: float) -> None:
    with RedisClient(RedisSettings(server.url)) as c:
        c.call("FLUSHALL")
    rulebook = work / f"noop-{batch_size}.yml"
    rulebook.write_text(NOOP_RULEBOOK.format(batch_size=batch_size))
    rb = Rulebook(rulebook, work / f"noop-{batch_size}.log", server.url).start()
    try:
        rb.wait_for("consuming bm:events:dhcp_lease", timeout=90)
        events = [lease(i) for i in range(n)] + [lease(n, last=True)]
        with RedisClient(RedisSettings(server.url)) as c:
            for start in range(0, len(events), 500):
                publish(c, events[start : start + 500])
        t = time.monotonic()
        rb.wait_for("BENCH-DONE", timeout=limit_s)
        elapsed = time.monotonic() - t
        label = "off" if batch_size == 1 else f"on (batch_size {batch_size})"
        print(f"source -> rulebook, no-op action, batching {label}: {n + 1} events in {elapsed:.2f} s = "
              f"{(n + 1) / elapsed:.0f} events/s")  # fmt: skip
    finally:
        rb.stop()


def bench_stage(server: RedisServer, work: Path, burst: int, batch_size: int, limit_s: float) -> tuple[float, float]:
    with RedisClient(RedisSettings(server.url)) as c:
        c.call("FLUSHALL")
    (work / "stage").mkdir(exist_ok=True)
    (work / "stage/stage.yml").write_text(STAGE)
    rulebook = work / f"stage-{batch_size}.yml"
    rulebook.write_text(STAGE_RULEBOOK.format(batch_size=batch_size, stage=work / "stage/stage.yml", stamps=work))
    rb = Rulebook(rulebook, work / f"stage-{batch_size}.log", server.url).start()
    try:
        rb.wait_for("consuming bm:events:dhcp_lease", timeout=90)
        with RedisClient(RedisSettings(server.url)) as c:
            publish(c, [lease(i) for i in range(burst)])
            t = time.monotonic()
            done = 0
            while time.monotonic() - t < limit_s:
                done = int(c.call("XLEN", "bm:events:device_discovered") or 0)
                if done >= burst:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - t
        time.sleep(1)  # let the last playbook's recap reach the log
        runs = rb.text().count("PLAY RECAP")
        label = "off" if batch_size == 1 else f"on (batch_size {batch_size})"
        note = "" if done >= burst else f" (time bound {limit_s:.0f} s reached)"
        print(
            f"stage burst of {burst} dhcp_lease, batching {label}: {done} servers by {runs} playbook runs in "
            f"{elapsed:.1f} s = {runs / elapsed:.2f} stage runs/s, {done / elapsed:.2f} servers/s{note}"
        )
        return runs / elapsed, done / elapsed
    finally:
        rb.stop()


def bench_idle_latency(server: RedisServer, work: Path, n: int, limit_s: float) -> None:
    """One event at a time into an idle service: published -> the stage's first task, and -> its follow-up."""
    with RedisClient(RedisSettings(server.url)) as c:
        c.call("FLUSHALL")
    stamps = work / "stamps"
    stamps.mkdir(exist_ok=True)
    (work / "stamped.yml").write_text(STAMPED_STAGE)
    rulebook = work / "stage-idle.yml"
    rulebook.write_text(STAGE_RULEBOOK.format(batch_size=50, stage=work / "stamped.yml", stamps=stamps))
    rb = Rulebook(rulebook, work / "stage-idle.log", server.url).start()
    started: list[float] = []
    finished: list[float] = []
    try:
        rb.wait_for("consuming bm:events:dhcp_lease", timeout=90)
        deadline = time.monotonic() + limit_s
        with RedisClient(RedisSettings(server.url)) as c:
            for i in range(n):
                time.sleep(2)  # idle: the previous stage is done
                event = lease(i)
                published = time.time()
                publish(c, [event])
                while time.monotonic() < deadline and int(c.call("XLEN", "bm:events:device_discovered") or 0) <= i:
                    time.sleep(0.02)
                finished.append(time.time() - published)
                stamp = stamps / str(event["event_id"])
                if stamp.exists():
                    started.append(float(stamp.read_text()) - published)
        if len(started) < n or len(finished) < n:
            print(f"idle latency: only {len(started)} of {n} stages started within {limit_s:.0f} s")
            return
        print(f"idle, one event at a time ({n}): published -> stage playbook's first task p50 "
              f"{statistics.median(started):.2f} s, p95 {pct(started, 95):.2f} s; -> follow-up published p50 "
              f"{statistics.median(finished):.2f} s, p95 {pct(finished, 95):.2f} s")  # fmt: skip
    finally:
        rb.stop()


def run(large: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        work = Path(tmp)
        server = RedisServer(work / "redis", fsync="everysec")
        server.start()
        try:
            with RedisClient(RedisSettings(server.url)) as c:
                bench_publish(c, 2000 if large else 300)
            bench_idle_latency(server, work, 20, 240)
            bench_hook(server.url, work / "spool", 200 if large else 50)
            bench_hook_burst(server.url, work / "burst-spool", 100)
            bench_dhcp_servers(server, work, 100 if large else 30)
            bench_noop(server, work, 2000 if large else 300, 1, 300 if large else 90)
            bench_noop(server, work, 2000 if large else 300, 50, 300 if large else 90)
            burst = 100
            _off_runs, off_servers = bench_stage(server, work, burst, 1, 400 if large else 40)
            _on_runs, on_servers = bench_stage(server, work, burst, 50, 120 if large else 60)
            print(f"batching on / off: {on_servers / off_servers:.1f}x servers/s")
        finally:
            server.stop()
