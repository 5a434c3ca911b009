"""The whole pipeline under chaos: rulebook SIGKILLs, a Redis restart, a NetBox outage, flaky BMCs, one dead BMC.

`make chaos` runs the full form (BM_CHAOS=full: 50 servers, 5 kills, NetBox down 30 s); `BM_CHAOS=short make chaos`
the short one (8 servers, 2 kills, NetBox down 5 s, about 7 minutes). Not in `make test` yet: its short form joins it
once it has a record of green runs. BM_CHAOS_SEED replays a schedule (every run prints its seed);
BM_SIM_WEBHOOK_PORT and BM_SIM_FIRST_ADDRESS move the webhook and the BMCs away from another run on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pynetbox
import pytest
import redis

from bm_lab import chaos

MODE = os.environ.get("BM_CHAOS", "")
FULL = MODE == "full"
SHORT = ["--count", "8", "--kills", "2", "--netbox-seconds", "5", "--horizon", "60", "--dead-mode", "drop",
         "--timeout", "360"]  # fmt: skip
LONG = ["--count", "50", "--kills", "5", "--netbox-seconds", "30", "--horizon", "600", "--dead-mode", "stall",
        "--timeout", "2400"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600 if FULL else 600),
    pytest.mark.skipif(MODE not in ("short", "full"), reason="the chaos suite runs with `make chaos` (BM_CHAOS)"),
]


def test_pipeline_survives_chaos(netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path) -> None:
    argv = [*(LONG if FULL else SHORT), "--workdir", str(tmp_path)]
    if os.environ.get("BM_CHAOS_SEED"):
        argv += ["--chaos-seed", os.environ["BM_CHAOS_SEED"]]
    outcome = chaos.run(chaos.build_parser().parse_args(argv))
    chaos.report(outcome)
    kinds = [fault.kind for fault in outcome.plan.faults]
    timeline = "\n".join(outcome.chaos.timeline)
    assert timeline.count("SIGKILLed") == kinds.count("rulebook_kill") >= 1, timeline  # the faults really happened
    assert "Redis started again" in timeline, timeline
    assert ("NetBox started again" in timeline) == ("netbox_stop" in kinds), timeline
    assert outcome.injected_503_ratio > 0.03, outcome.injected_503_ratio
    assert sum(outcome.sim.counters[outcome.plan.dead_index]["requests"].values()) >= 1  # provisioning tried it
    failed = {name: problems for name, problems in outcome.problems.items() if problems}
    assert not failed, f"seed {outcome.plan.seed}: {failed}\n{timeline}"
