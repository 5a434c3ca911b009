#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.redfish_metrics: poll many BMCs concurrently, write JSON, Prometheus textfile and NetBox."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redfish_metrics
short_description: Poll the Redfish metrics of many BMCs concurrently; write JSON files, a Prometheus textfile, NetBox
version_added: 0.1.0
description:
  - Polls the BMC of every active item of O(batch) in one process with aiohttp. Concurrency is bounded by
    O(concurrency) and each BMC has its own deadline (O(timeout)). Requests use HTTP Basic authentication, so no session
    is created and none can leak. HTTP 503 and connection errors get bounded retries (O(retries)). An item whose BMC
    has no address or no login is counted as a failed poll.
  - "Per BMC it follows the service's own collections: the first member of C(/redfish/v1/Systems/) (processor count
    and health, memory total and health) and the chassis that system links (else the first member of
    C(/redfish/v1/Chassis/)). On that chassis it reads the DMTF model when the chassis links it
    (C(EnvironmentMetrics) power, C(PowerSubsystem) power supplies, C(ThermalSubsystem) temperatures and fans; iLO 6)
    and the deprecated C(Power) and C(Thermal) otherwise (iLO 5), or for the watts where C(EnvironmentMetrics) has
    none. Paths are used as the BMC links them (a real iLO ends every link with C(/))."
  - "Reads the inlet temperature (C(TemperatureSummaryCelsius.Ambient), else the sensor whose C(PhysicalContext) is
    C(Intake), else the one named inlet/ambient). Fan and power-supply health are folded into the overall health and
    exported as their own series. What the BMC does not give stays unknown (null in the JSON, an absent series in
    Prometheus), never 0. The series are listed in the README's metrics table."
  - A failed poll names the request that failed and how (HTTP status, Redfish C(MessageId) and message, or the
    connection error).
  - A BMC that fails is logged (RV(failures)) and counted; the others are unaffected.
  - "Writes: one JSON file per device per poll, the plan's format, as C(<metrics_dir>/<device>-<YYYYmmddTHHMMSSZ>.json)
    (the newest O(retention) per device are kept); a Prometheus textfile-collector file (O(textfile), written
    atomically)."
  - NetBox gets only what changes a server's standing, not its readings. A device read as C(staged) (hardened,
    waiting for monitoring) whose poll succeeds moves to C(monitored) through the lifecycle state machine's
    C(start_monitoring) transition (compare-and-set under the device's lock, one bulk C(PATCH) for the cycle that also
    sets C(last_monitored_at) and C(last_power_watts), a journal entry each). A change of standing since the last
    cycle (the BMC stopped answering or answers again, the overall health changed) gets a journal entry on the device,
    all of a cycle's in one bulk POST; nothing is written when nothing changed.
author:
  - bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
requirements:
  - aiohttp
options:
  batch:
    description:
      - The devices to poll, as M(bm.lifecycle.stage_batch) with O(bm.lifecycle.stage_batch#module:select=polled)
        returns them (later steps may fail items; only the active ones are polled). An item's C(facts.state) V(staged)
        makes its successful poll move it to V(monitored).
    type: list
    elements: dict
    required: true
  addresses:
    description: Overrides of NetBox's oob_ip, C(host) or C(host:port) by device name (labs).
    type: dict
    default: {}
  port:
    description: The BMCs' HTTPS port where an address names none.
    type: int
    default: 443
  credentials:
    description:
      - Logins by device name (C(username), C(password)), as M(bm.lifecycle.bmc_credentials) returns them with
        O(bm.lifecycle.bmc_credentials#module:state=read); a device not named uses O(username) and O(password).
    type: dict
    default: {}
  username:
    description: BMC user; if not set, the environment variable E(BM_BMC_USERNAME).
    type: str
  password:
    description: BMC password; if not set, the environment variable E(BM_BMC_PASSWORD).
    type: str
  ca_path:
    description: CA bundle of the BMCs' certificates; if not set, the environment variable E(BM_BMC_CA_PATH).
    type: path
  validate_certs:
    description: Verify the BMCs' TLS certificates. V(false) warns on every run, naming how many BMCs are affected.
    type: bool
    default: true
  concurrency:
    description: BMCs polled at the same time (and the connection pool's size).
    type: int
    default: 100
  timeout:
    description: Seconds one BMC may take for all its requests, retries included.
    type: float
    default: 20
  retries:
    description: Retries of one request on HTTP 503 and connection errors (bounded exponential backoff).
    type: int
    default: 2
  metrics_dir:
    description:
      - Directory of the JSON files; empty for none.
      - If not set, the environment variable E(BM_METRICS_DIR), else C(/var/log/bm/metrics).
    type: path
  retention:
    description: JSON files kept per device (default one day at one poll per 5 minutes).
    type: int
    default: 288
  textfile:
    description: Prometheus textfile-collector file (for example C(/var/lib/node_exporter/textfile/bm_redfish.prom)).
      If not set, E(BM_PROMETHEUS_TEXTFILE); empty for none.
    type: path
  update_netbox:
    description: Move the hardened C(staged) devices polled OK to C(monitored) in NetBox.
    type: bool
    default: true
  tenant:
    description: Only devices of this tenant move to C(monitored).
    type: str
    default: baremetal-staging
  return_metrics:
    description: Return every device's metrics in RV(devices) (large for big fleets).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Polls (read-only GETs) and reports; writes no file and nothing to NetBox.
  diff_mode:
    support: none
    description: A poll has no before and after.
"""

EXAMPLES = r"""
- name: The devices to poll
  bm.lifecycle.stage_batch:
    event_type: hardening_completed
    select: polled
  register: fleet

- name: Their stored BMC logins
  bm.lifecycle.bmc_credentials:
    batch: "{{ fleet.batch }}"
    state: read
  register: logins
  no_log: true

- name: One monitoring cycle
  bm.lifecycle.redfish_metrics:
    batch: "{{ logins.batch }}"
    credentials: "{{ logins.credentials }}"
    ca_path: /etc/bm/ilo-ca.pem
    metrics_dir: /var/log/bm/metrics
    textfile: /var/lib/node_exporter/textfile/bm_redfish.prom
  register: cycle
"""

RETURN = r"""
polled:
  description: BMCs polled.
  returned: always
  type: int
ok:
  description: BMCs polled successfully.
  returned: always
  type: int
failed:
  description: BMCs that failed.
  returned: always
  type: int
failures:
  description: Name and reason of each failed BMC.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "srv007", "error": "GET /redfish/v1/Systems/: HTTP 401: wrong credentials"}]
cycle_seconds:
  description: Wall time of the polling.
  returned: always
  type: float
requests:
  description: HTTP requests sent to the BMCs, retries included.
  returned: always
  type: int
files_written:
  description: JSON files written.
  returned: always
  type: int
netbox_updated:
  description: Devices whose custom fields were written to NetBox.
  returned: always
  type: int
standing_changes:
  description: Changes of standing since the last cycle (a BMC that stopped answering or answers again, a change of
    overall health), each journalled on the device in one bulk POST; readings never count. The last standing per
    device is kept in the Redis hash C(bm:monitoring:standing:<tenant>); a device's first poll is recorded, not
    reported.
  returned: always (empty in check mode or without O(update_netbox))
  type: list
  elements: dict
  sample: [{"name": "srv007", "kind": "danger", "comments": "Redfish health OK -> Critical (fans Critical)"}]
monitored:
  description: Devices moved from staged to monitored by this poll.
  returned: always
  type: list
  elements: str
devices:
  description: Per device, the metrics (only with O(return_metrics)).
  returned: when O(return_metrics)
  type: list
  elements: dict
"""

import os
import time
from typing import Any

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import active, check_items
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    AIOHTTP_IMPORT_ERROR,
    BMC_ARGUMENT_SPEC,
    HAS_AIOHTTP,
    bmc_params_for,
    split_address,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_metrics import (
    journal_changes,
    prometheus_text,
    read_standing,
    run_poll,
    standing_changes,
    sync_netbox,
    utc_now,
    write_json_files,
    write_standing,
    write_textfile,
)

BMC_LOGIN = ("username", "password", "ca_path", "validate_certs")


def targets_of(module: LifecycleModule) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The BMCs of the batch's active items, and a failure for each item whose BMC has no address or no login."""
    params = module.params
    targets, failures = [], []
    for item in active(check_items(params["batch"])):
        device = item["device"] or {}
        try:
            bmc = bmc_params_for(params, item)
        except ValueError as error:
            failures.append({"name": str(device.get("name")), "error": str(error)})
            continue
        host, port = split_address(bmc["address"], params["port"])
        target = {"name": str(device.get("name")), "device_id": device.get("id"), "address": host, "port": port,
                  "state": item["facts"].get("state"), "bmc_identity": item["facts"].get("bmc_identity")}  # fmt: skip
        targets.append(target | {key: bmc[key] for key in BMC_LOGIN})
    insecure = sum(1 for t in targets if not t.get("validate_certs", True))
    if insecure:
        module.warn(
            f"TLS certificate verification is disabled for {insecure} BMC(s) (validate_certs=false); "
            "set ca_path instead"
        )
    return targets, failures


def poll(module: LifecycleModule, polled: dict[str, Any]) -> dict[str, Any]:
    """One cycle: poll, write the files, update NetBox; ``polled`` gets the result before NetBox is written."""
    if not HAS_AIOHTTP:
        module.fail_json(msg=missing_required_lib("aiohttp"), exception=AIOHTTP_IMPORT_ERROR)
    params = module.params
    targets, unreachable = targets_of(module)
    moment = utc_now()
    started = time.monotonic()
    results = run_poll(
        targets, concurrency=params["concurrency"], deadline=params["timeout"], retries=params["retries"]
    )
    cycle_seconds = time.monotonic() - started
    ok = [r for r in results if r.get("ok")]
    failures = unreachable + [{"name": r["name"], "error": r.get("error")} for r in results if not r.get("ok")]
    for failure in failures[:20]:
        module.log(f"redfish_metrics: {failure['name']}: {failure['error']}")
    result: dict[str, Any] = {
        "changed": False,
        "polled": len(results) + len(unreachable),
        "ok": len(ok),
        "failed": len(failures),
        "failures": failures,
        "cycle_seconds": round(cycle_seconds, 3),
        "requests": sum(r.get("requests", 0) for r in results),
        "files_written": 0,
        "netbox_updated": 0,
        "monitored": [],
        "standing_changes": [],
    }
    if params["return_metrics"]:
        result["devices"] = [{k: r.get(k) for k in ("name", "device_id", "ok", "error", "metrics")} for r in results]
    metrics_dir = params["metrics_dir"]
    if metrics_dir is None:
        metrics_dir = "/var/log/bm/metrics"
    textfile = params["textfile"]
    if module.check_mode:
        result["changed"] = bool(ok)
        return result
    if metrics_dir:
        result["files_written"] = len(write_json_files(metrics_dir, results, moment, params["retention"]))
    if textfile:
        write_textfile(textfile, prometheus_text(results, cycle_seconds, moment))
    if params["update_netbox"] and results:
        tenant = params["tenant"]
        polled.update(result)
        standing, changes = standing_changes(read_standing(module.redis, tenant), results)
        journal_changes(module.netbox, changes)
        synced = sync_netbox(module.netbox, module.redis, results, {t["name"]: t for t in targets}, tenant=tenant)
        write_standing(module.redis, tenant, standing, (r["name"] for r in results))
        result["standing_changes"] = [{k: c[k] for k in ("name", "kind", "comments")} for c in changes]
        result["netbox_updated"] = synced["updated"]
        result["monitored"] = synced["monitored"]
    result["changed"] = bool(
        result["files_written"] or result["netbox_updated"] or (textfile and os.path.exists(textfile))
    )
    return result


def main() -> None:
    """Run the module."""
    options = {
        "batch": {"type": "list", "elements": "dict", "required": True},
        **{key: dict(BMC_ARGUMENT_SPEC[key]) for key in ("addresses", "port", "credentials")},
        **{key: dict(BMC_ARGUMENT_SPEC[key]) for key in BMC_LOGIN},
        "concurrency": {"type": "int", "default": 100},
        "timeout": {"type": "float", "default": 20.0},
        "retries": {"type": "int", "default": 2},
        "metrics_dir": {"type": "path", "fallback": (env_fallback, ["BM_METRICS_DIR"])},
        "retention": {"type": "int", "default": 288},
        "textfile": {"type": "path", "fallback": (env_fallback, ["BM_PROMETHEUS_TEXTFILE"])},
        "update_netbox": {"type": "bool", "default": True},
        "tenant": {"type": "str", "default": "baremetal-staging"},
        "return_metrics": {"type": "bool", "default": False},
    }
    module = LifecycleModule(options, redis=True, netbox_requests=False)
    polled: dict[str, Any] = {}

    def netbox_failed(error: Exception) -> dict[str, Any]:
        if not polled:
            return {}
        return {**polled, "msg": f"metrics polled and written, but NetBox could not be updated: {error}"}

    module.run(lambda m: poll(m, polled), on_error=netbox_failed)


if __name__ == "__main__":
    main()
