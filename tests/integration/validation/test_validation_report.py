"""Validation, end to end on the stack: the report posted as the image would (from a mock iLO 5 PXE-boot callback that
reads its boot parameters), the webhook writing it to the bus, bm.lifecycle.validation_report applying it to NetBox.
Everything is checked through pynetbox and redis-py, never through the code under test."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from ansible_collections.bm.lifecycle.plugins.module_utils import _validation_token as tokens
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from helpers import ansible_playbook
from integration.validation.validation_support import (
    NICS,
    STREAM,
    ask_token,
    build_report,
    cf,
    free_port,
    hand_out,
    post,
    pxe_callback_file,
    server_macs,
    snapshot,
    take,
    tls,
)

TRANSITION = "Move the devices to validation_completed (compare-and-set; the journal entry carries the summary)"
APPLY = "Apply the reports to NetBox (only while the devices are in validating)"
pytestmark = [pytest.mark.stack, pytest.mark.slow]
testing = pytest.importorskip("bm_mock_ilo.testing", reason="the mock iLO fleet is not available")


def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def openapi_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/api/v1/openapi.json", timeout=2, context=tls()) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def set_state(nb: pynetbox.api, name: str, state: str) -> Any:
    device = nb.dcim.devices.get(name=name)
    device.update({"custom_fields": {"lifecycle_state": state}})
    return nb.dcim.devices.get(name=name)


def issue_boot_file(stack: dict[str, str], device_id: int, callback: str, path: Path, report: dict[str, Any]) -> None:
    """What provisioning does: a token bound to the server's identity (as its BMC states it: the report's), to be
    handed out once, and the boot parameters, which carry no secret."""
    with RedisClient(RedisSettings(stack["BM_REDIS_URL"])) as bus:
        tokens.issue(bus, device_id, tokens.Identity.of(report["hardware"]), 600)
    path.write_text(tokens.kernel_params(device_id, callback) + "\n")


def provisioned(stack: dict[str, str], device_id: int, callback: str, path: Path, report: dict[str, Any]) -> str:
    """Provisioning, then the image's token request: the token the report goes with."""
    issue_boot_file(stack, device_id, callback, path, report)
    return hand_out(callback, report)


def run_stage(stack: dict[str, str], batch: dict[str, Any], tmp: Path, rc: int = 0) -> tuple[dict[str, Any], float]:
    """ansible-playbook bm.lifecycle.validation_report with the batch, as the rulebook runs it; per-task results."""
    extra = tmp / f"batch-{time.monotonic_ns()}.json"
    extra.write_text(json.dumps({"bm_batch": batch}))
    started = time.monotonic()
    proc = ansible_playbook(
        "bm.lifecycle.validation_report",
        "-e",
        f"@{extra}",
        timeout=300,
        NETBOX_API=stack["NETBOX_API"],
        NETBOX_TOKEN=stack["NETBOX_TOKEN"],
        BM_REDIS_URL=stack["BM_REDIS_URL"],
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    seconds = time.monotonic() - started
    assert proc.returncode == rc, proc.stdout[-4000:] + proc.stderr[-2000:]
    results: dict[str, Any] = {}
    for play in json.loads(proc.stdout)["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if host == "localhost":
                    results[task["task"]["name"]] = result
    return results, seconds


def test_report_from_pxe_boot_takes_the_device_to_validation_completed(
    stack: dict[str, str],
    netbox: pynetbox.api,
    redis_client: redis.Redis,
    switches: dict[str, Any],
    webhook: str,
    tmp_path: Path,
) -> None:
    srv = set_state(netbox, "srv001", "validating")
    boot_file = tmp_path / "srv001.cmdline"
    posted: list[tuple[int, Any]] = []
    done = threading.Event()
    reports: dict[str, Any] = {}

    def image(bmc: Any) -> None:
        """The validation image: read the kernel command line, build the report, ask for the token, POST until a
        2xx (bounded)."""
        params = pxe_callback_file(boot_file)
        assert "token" not in params and "token" not in boot_file.read_text()
        report = build_report(int(params["device_id"]), bmc.serial, server_macs(list(bmc.nic_macs)))
        reports["first"] = report
        token = hand_out(params["callback"], report)
        for _ in range(10):
            status, answer = post(params["callback"], json.dumps(report).encode(), token)
            posted.append((status, answer))
            if 200 <= status < 300:
                break
            time.sleep(0.5)
        done.set()

    from bm_mock_ilo.bmc import Settings  # noqa: PLC0415

    with testing.start_fleet(1, settings=Settings(post_seconds=0.2), on_pxe_boot=image) as fleet:
        bmc = fleet[0]
        issue_boot_file(
            stack, srv.id, webhook, boot_file, build_report(srv.id, bmc.serial, server_macs(list(bmc.nic_macs)))
        )
        client = testing.RedfishClient.admin(bmc)
        boot = {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
        assert client.patch("/redfish/v1/Systems/1", boot).status_code < 300
        assert client.post("/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", {"ResetType": "On"}).status_code < 300
        assert done.wait(60), "the PXE-boot callback did not post"
    assert posted[-1][0] == 202, posted
    assert posted[-1][1]["status"] == "success"
    assert posted[-1][1]["device_id"] == str(srv.id)
    assert redis_client.xlen(STREAM) == 1  # durable before the answer

    batch = take(redis_client)
    assert batch["batch_size"] == 1
    before = snapshot(netbox)
    results, seconds = run_stage(stack, batch, tmp_path)
    apply = results[APPLY]

    # the device: state, timestamp, model, manufacturer, serial
    dev = netbox.dcim.devices.get(srv.id)
    assert cf(dev, "lifecycle_state") == "validation_completed"
    assert cf(dev, "validation_completed_at")
    assert dev.serial == bmc.serial
    assert dev.device_type.model == "ProLiant DL360 Gen10"
    assert netbox.dcim.device_types.get(dev.device_type.id).manufacturer.name == "HPE"
    # interfaces and MACs (the MAC model: primary MAC on each)
    macs = server_macs(list(bmc.nic_macs))
    for name, mac in zip(NICS, macs, strict=True):
        iface = netbox.dcim.interfaces.get(device_id=srv.id, name=name)
        assert iface is not None, name
        assert str(iface.mac_address).lower() == mac
        assert [str(m.mac_address).lower() for m in netbox.dcim.mac_addresses.filter(mac_address=mac)] == [mac]
    for virtual in ("usb0", "dummy0", "br0", "eth0.100"):
        assert netbox.dcim.interfaces.get(device_id=srv.id, name=virtual) is None
    # cables: tor-a by name, tor-b by chassis MAC + port MAC, tor-c by management IP + port description

    def peer(name: str) -> tuple[str, str] | None:
        iface = netbox.dcim.interfaces.get(device_id=srv.id, name=name)
        peers = iface.link_peers or []
        return (peers[0]["device"]["name"], peers[0]["name"]) if peers else None

    assert peer("eth0") == ("tor-a", "Ethernet1")
    assert peer("eth1") == ("tor-b", "Ethernet2")
    assert peer("eth2") == ("tor-c", "Ethernet7")
    assert peer("eth3") is None and peer("eth4") is None and peer("eth5") is None
    # the conflicting cable is untouched
    tor_a4 = netbox.dcim.interfaces.get(device_id=switches["tor-a"]["device"].id, name="Ethernet4")
    assert tor_a4.link_peers[0]["device"]["name"] == "peer01"
    # reported: conflict, unmatched neighbour, link without neighbour - in the journal and in the event
    journal = [
        j.comments
        for j in netbox.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=srv.id)
    ]
    text = "\n".join(journal)
    assert "ghost-switch" in text
    assert "eth4" in text
    assert "CABLE CONFLICTS" in text and "peer01" in text
    rows: Any = redis_client.xrange("bm:events:validation_completed")
    [completed] = [json.loads(f["envelope"]) for _, f in rows]
    data = completed["data"]
    assert completed["causation_id"] == batch["entries"][0]["envelope"]["event_id"]
    assert [u["chassis_name"] for u in data["unmatched_neighbors"]] == ["ghost-switch"]
    assert data["no_neighbor_links"] == ["eth4"]
    assert [(c["interface"], c["port"]) for c in data["conflicts"]] == [("eth5", "Ethernet4")]
    assert sorted(c["switch"] for c in data["cables"]) == ["tor-a", "tor-b", "tor-c"]
    assert redis_client.xpending(STREAM, "bm-lifecycle")["pending"] == 0
    after_first = snapshot(netbox)
    assert len(after_first["interfaces"]) == len(before["interfaces"]) + len(NICS)
    assert len(after_first["cables"]) == len(before["cables"]) + 3
    print(
        f"validation_report stage: 1 report, {apply['netbox_requests']} NetBox requests in the apply module + "
        f"{results[TRANSITION]['netbox_requests']} in the transition, ansible-playbook wall {seconds:.1f} s"
    )

    # the same entry delivered again (a crash before the ack): nothing new, nothing published twice
    results2, _ = run_stage(stack, batch, tmp_path)
    [redelivered] = results2[APPLY]["batch"]
    assert redelivered["facts"]["redelivered"] is True  # already validation_completed: its event again, deduplicated
    assert snapshot(netbox) == after_first
    assert redis_client.xlen("bm:events:validation_completed") == 1

    # the same report posted again (validating again, a new token): accepted, and it creates nothing new in NetBox
    set_state(netbox, "srv001", "validating")
    token = provisioned(stack, srv.id, webhook, boot_file, reports["first"])
    assert post(webhook, json.dumps(reports["first"]).encode(), token)[0] == 202
    results3, seconds3 = run_stage(stack, take(redis_client), tmp_path)
    apply3 = results3[APPLY]
    assert apply3["changed"] is False, apply3["batch"][0]["facts"]["changes"]
    again = snapshot(netbox)
    for key in ("interfaces", "macs", "cables", "device_types", "manufacturers"):
        assert again[key] == after_first[key], key
    assert cf(netbox.dcim.devices.get(srv.id), "lifecycle_state") == "validation_completed"
    print(
        f"validation_report stage, same report again: {apply3['netbox_requests']} NetBox requests, "
        f"wall {seconds3:.1f} s, nothing written"
    )


def test_refusals_change_nothing(
    stack: dict[str, str],
    netbox: pynetbox.api,
    redis_client: redis.Redis,
    webhook: str,
    tmp_path: Path,
) -> None:
    srv = set_state(netbox, "srv001", "validating")
    report = build_report(srv.id, "CZJ1234567", server_macs(["94:40:c9:aa:00:00", "94:40:c9:aa:00:01"]))
    token = provisioned(stack, srv.id, webhook, tmp_path / "boot", report)
    body = json.dumps(report).encode()
    before = snapshot(netbox)
    wrong_type = json.dumps({**report, "interfaces": [{"name": 5, "mac": True}]}).encode()
    cases = [
        ("no token", body, None, 401),
        ("wrong token", body, "A" * 43, 401),
        ("malformed JSON", body[:-10], token, 400),
        ("wrong types", wrong_type, token, 422),
        ("oversize body", json.dumps({**report, "agent": {"pad": "x" * 1_100_000}}).encode(), token, 413),
    ]
    for what, data, tok, status in cases:
        code, answer = post(webhook, data, tok)
        assert code == status, (what, answer)
        assert answer["status"] == "error" and answer["message"], what
        assert redis_client.xlen(STREAM) == 0, what
    assert snapshot(netbox) == before
    # not in validating: refused, token kept
    set_state(netbox, "srv001", "staged")
    before = snapshot(netbox)
    code, answer = post(webhook, body, token)
    assert (code, answer["error"]) == (409, "wrong_state")
    assert redis_client.xlen(STREAM) == 0
    assert snapshot(netbox) == before
    # replayed token: the first post is accepted (written to the bus, NetBox untouched), the replay refused
    set_state(netbox, "srv001", "validating")
    before = snapshot(netbox)
    assert post(webhook, body, token)[0] == 202
    code, answer = post(webhook, body, token)
    assert (code, answer["error"]) == (401, "invalid_token")
    assert redis_client.xlen(STREAM) == 1
    assert snapshot(netbox) == before


RULEBOOK = """
- name: validation
  hosts: all  # ansible-rulebook limits the playbook to these hosts: the stage's add_host hosts must pass
  sources:
    - bm.lifecycle.validation_webhook:
        port: {port}
    - bm.lifecycle.redis_streams:
        event_types: [validation_report]
        consumer: pytest-service
        batch_wait_ms: 100
  rules:
    - name: validation_report -> NetBox
      condition: event.event_type == "validation_report"
      action:
        run_playbook:
          name: bm.lifecycle.validation_report
          extra_vars:
            bm_batch: "{{{{ event }}}}"
"""


def test_rulebook_killed_right_after_the_answer_loses_nothing(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The real ansible-rulebook serves the webhook; SIGKILL right after the 202; the restarted service finishes."""
    from integration.events.rulebook import Rulebook  # noqa: PLC0415

    srv = set_state(netbox, "srv001", "validating")
    port = free_port()
    url = f"https://127.0.0.1:{port}/api/v1/validation/report"
    report = build_report(srv.id, "CZJ7777777", server_macs(["94:40:c9:bb:00:00", "94:40:c9:bb:00:01"]))
    issue_boot_file(stack, srv.id, url, tmp_path / "boot", report)
    rulebook_file = tmp_path / "validation.yml"
    rulebook_file.write_text(RULEBOOK.format(port=port))
    service = Rulebook(rulebook_file, tmp_path / "rulebook.log", stack["BM_REDIS_URL"])
    try:
        service.start()
        assert wait_until(lambda: openapi_up(port), 120), service.text()[-3000:]
        code, answer = post(url, json.dumps(report).encode(), hand_out(url, report))
        service.kill()  # SIGKILL to the whole process group, right after the answer
        assert code == 202, answer
        assert redis_client.xlen(STREAM) == 1
        service.start()

        def completed() -> bool:
            try:
                return cf(netbox.dcim.devices.get(srv.id), "lifecycle_state") == "validation_completed"
            except pynetbox.RequestError:  # a shared stack: another session may be resetting NetBox
                return False

        assert wait_until(completed, 240), service.text()[-4000:]
        dev = netbox.dcim.devices.get(srv.id)
        assert dev.serial == "CZJ7777777"
        assert netbox.dcim.interfaces.get(device_id=srv.id, name="eth0").mac_address.lower() == "94:40:c9:bb:00:00"
        assert wait_until(lambda: redis_client.xpending(STREAM, "bm-lifecycle")["pending"] == 0, 60)
        assert redis_client.xlen("bm:events:validation_completed") == 1
    finally:
        service.kill()


def test_batch_of_reports_isolates_a_failing_device(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, webhook: str, tmp_path: Path
) -> None:
    """Two reports in one batch; the second device vanished from NetBox after its report was accepted: the first
    completes, the second fails alone (stage_failed says why), and both entries are acknowledged."""
    srv1 = set_state(netbox, "srv001", "validating")
    srv2 = netbox.dcim.devices.create(
        {"name": "srv002", "device_type": srv1.device_type.id, "role": srv1.role.id, "site": srv1.site.id,
         "tenant": srv1.tenant.id, "status": "active", "custom_fields": {"lifecycle_state": "validating"}}
    )  # fmt: skip
    for dev, serial, base in ((srv1, "CZJ0000001", "94:40:c9:cc:00:0"), (srv2, "CZJ0000002", "94:40:c9:dd:00:0")):
        report = build_report(dev.id, serial, server_macs([base + "0", base + "1"]))
        token = provisioned(stack, dev.id, webhook, tmp_path / f"boot-{dev.id}", report)
        assert post(webhook, json.dumps(report).encode(), token)[0] == 202
    netbox.dcim.devices.get(srv2.id).delete()
    batch = take(redis_client)
    assert batch["batch_size"] == 2
    extra = tmp_path / "batch.json"
    extra.write_text(json.dumps({"bm_batch": batch}))
    proc = ansible_playbook(
        "bm.lifecycle.validation_report", "-e", f"@{extra}", timeout=300,
        NETBOX_API=stack["NETBOX_API"], NETBOX_TOKEN=stack["NETBOX_TOKEN"], BM_REDIS_URL=stack["BM_REDIS_URL"],
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:]  # one device failed
    assert cf(netbox.dcim.devices.get(srv1.id), "lifecycle_state") == "validation_completed"
    assert redis_client.xpending(STREAM, "bm-lifecycle")["pending"] == 0
    assert redis_client.xlen("bm:events:validation_completed") == 1
    rows: Any = redis_client.xrange("bm:events:stage_failed")
    [failed] = [json.loads(f["envelope"]) for _, f in rows]
    assert failed["data"]["reason"] == "unknown_device" and failed["device"]["id"] == srv2.id


def test_a_token_asked_for_twice_fails_the_device_and_another_identity_only_warns(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, webhook: str, tmp_path: Path
) -> None:
    """Someone read the boot script: another identity is refused (one journal warning a minute, nothing burned); the
    same identity asking a second time revokes the token, and the stage fails the device (validation_failed, the
    journal and stage_failed say why)."""
    srv = set_state(netbox, "srv001", "validating")
    report = build_report(srv.id, "CZJ5555555", server_macs(["94:40:c9:ee:00:00", "94:40:c9:ee:00:01"]))
    issue_boot_file(stack, srv.id, webhook, tmp_path / "boot", report)

    def journal(kind: str) -> list[str]:
        found = netbox.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=srv.id)
        return [j.comments for j in found if j.kind.value == kind]

    impostor = {**report, "hardware": {**report["hardware"], "serial": "CZJ0000666"}}
    for n in range(2):
        code, answer = ask_token(webhook, impostor, f"request-of-an-impostor-{n}")
        assert (code, answer["error"]) == (403, "identity_mismatch")
    [warning] = journal("warning")
    assert "presented" in warning and "CZJ0000666" in warning and "CZJ5555555" in warning and "127.0.0.1" in warning
    token = hand_out(webhook, report)  # the server itself: nothing was burned
    code, answer = ask_token(webhook, report, "request-of-someone-else")
    assert (code, answer["error"]) == (409, "token_requested_twice")
    assert post(webhook, json.dumps(report).encode(), token)[0] == 401  # the first caller's token is revoked too
    batch = take(redis_client)
    [entry] = batch["entries"]
    assert entry["envelope"]["data"]["refused"]["reason"] == "token_requested_twice"
    results, _ = run_stage(stack, batch, tmp_path, rc=2)  # a device failed
    assert results[APPLY]["batch"][0]["status"] == "failed"
    dev = netbox.dcim.devices.get(srv.id)
    assert cf(dev, "lifecycle_state") == "validation_failed"
    assert dev.serial != "CZJ5555555"  # nothing of the report was applied
    assert any("token_requested_twice" in text for text in journal("danger"))
    rows: Any = redis_client.xrange("bm:events:stage_failed")
    [failed] = [json.loads(f["envelope"]) for _, f in rows]
    assert (failed["data"]["reason"], failed["data"]["stage"]) == ("token_requested_twice", "validation_report")
    assert redis_client.xpending(STREAM, "bm-lifecycle")["pending"] == 0
