"""The whole pipeline under chaos: rulebook SIGKILLs, Redis restarts, a NetBox outage, flaky BMCs, one dead BMC.

`make test` runs the short form (8 servers, 2 kills, 1 Redis restart, NetBox down 5 s, about 6 minutes) on the
fixed schedule `CI_SEED`, so a red CI run replays exactly; `make chaos` runs the full form (BM_CHAOS=full: 50 servers,
5 kills, 2 Redis restarts, NetBox down 30 s) on a fresh seed each time. Both make a fifth of the other BMCs' requests
answer 503 or stall. BM_CHAOS_SEED replays any schedule (every run prints its seed); BM_SIM_WEBHOOK_PORT and
BM_SIM_FIRST_ADDRESS move the webhook and the BMCs away from another run on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pynetbox
import pytest
import redis

from bm_lab import chaos

MODE = os.environ.get("BM_CHAOS", "short")
if MODE not in ("short", "full"):
    raise pytest.UsageError(f"BM_CHAOS={MODE!r}: expected 'short' (the default, as in `make test`) or 'full'")
FULL = MODE == "full"
CI_SEED = 914819919  # the short form's schedule: 2 kills, a Redis restart and NetBox down, all inside the run
SHORT = ["--count", "8", "--kills", "2", "--redis-restarts", "1", "--netbox-seconds", "5", "--horizon", "60",
         "--dead-mode", "drop", "--timeout", "360"]  # fmt: skip
# the full run's bound: a kill that lands on a long batch costs a 3-min claim (50 servers: end states in 29 and 33 min)
LONG = ["--count", "50", "--kills", "5", "--redis-restarts", "2", "--netbox-seconds", "30", "--horizon", "600",
        "--dead-mode", "stall", "--timeout", "3600"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(4800 if FULL else 600),
]


def test_pipeline_survives_chaos(netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path) -> None:
    argv = [*(LONG if FULL else SHORT), "--workdir", str(tmp_path)]
    seed = os.environ.get("BM_CHAOS_SEED") or (None if FULL else str(CI_SEED))
    if seed:
        argv += ["--chaos-seed", seed]
    outcome = chaos.run(chaos.build_parser().parse_args(argv))
    chaos.report(outcome)
    kinds = [fault.kind for fault in outcome.plan.faults]
    timeline = "\n".join(outcome.chaos.timeline)
    assert timeline.count("SIGKILLed") == kinds.count("rulebook_kill") >= 1, timeline  # the faults really happened
    assert timeline.count("Redis started again") == kinds.count("redis_restart") >= 1, timeline
    assert ("NetBox started again" in timeline) == ("netbox_stop" in kinds), timeline
    assert not outcome.bmc_share_misses(), outcome.bmc_share_misses()  # a fifth of each live BMC's requests, exactly
    assert sum(c["share_requests"] for c in outcome.live_counters) >= 50  # ... and the pipeline really met them
    assert sum(outcome.sim.counters[outcome.plan.dead_index]["requests"].values()) >= 1  # provisioning tried it
    failed = {name: problems for name, problems in outcome.problems.items() if problems}
    assert not failed, f"seed {outcome.plan.seed}: {failed}\n{timeline}"
