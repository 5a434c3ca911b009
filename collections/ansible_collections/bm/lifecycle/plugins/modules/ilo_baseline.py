#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.ilo_baseline: an idempotent HPE iLO 5 hardening baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ilo_baseline
short_description: Bring an HPE iLO 5 to a declared security baseline, idempotently
version_added: 0.1.0
description:
  - Declarative desired state of an iLO 5's security settings. Options left unset are not managed.
  - Reads everything first (GETs only), computes the difference, and in check mode only reports it (with diff).
  - Otherwise applies only what differs, in a safe order (password policy, admin password, accounts, network
    protocols and remote syslog in one PATCH, SNMPv3 users, alert destinations, SNMPv1), collects every change the
    BMC answers with C(ResetRequired) (or that was already pending) into one single C(Manager.Reset), waits (bounded
    by O(reset_timeout)) for the BMC to come back, and verifies by reading everything again.
  - A second run reports C(changed=false).
  - The admin password is write-only on iLO (C(Password) always reads null); it is compared and verified by logging in
    with it. If the connecting account is the admin account and its password was already changed to O(admin_password),
    the module logs in with O(admin_password) instead, so that a re-run after a partial failure still works.
  - Remote syslog needs the iLO licence feature C(RemoteSyslog) (iLO Advanced); without it the module fails with an
    error naming the feature, before any change.
  - On failure the result carries RV(failed_step), so that a stage can say where it stopped.
  - With O(batch), works on the BMC of every active item of a stage's batch at once; an item's login is
    O(credentials)[device name] C({username, password}), and its C(new_password) is that device's O(admin_password).
    A BMC that fails fails its item alone (C(failure.reason) is the step); each applied item's C(facts) gain
    C(changes), C(reset_performed), C(firmware) and C(transition_reason).
author:
  - bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.bmc
options:
  admin_username:
    description: The iLO administrator account whose password O(admin_password) sets.
    type: str
    default: Administrator
  admin_password:
    description:
      - The administrator's desired password (write-only; compared by logging in). Keep it in Ansible Vault.
    type: str
  remove_accounts:
    description:
      - Local accounts that must not exist. The account in use, the admin account and service accounts (such as
        C(_HPOneViewAdmin)) are refused with an error before any change.
    type: list
    elements: str
    default: []
  snmpv3_users:
    description:
      - SNMPv3 users that must exist (matched by name; protocols compared). Passphrases cannot be read back; they are
        sent on creation, or on every run with O(update_passphrases).
      - Setting users or alert destinations turns the SNMP protocol on.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The SNMPv3 security name.
        type: str
        required: true
      auth_protocol:
        description: Authentication protocol.
        type: str
        default: SHA256
        choices: [MD5, SHA, SHA256]
      auth_passphrase:
        description: Authentication passphrase (8 to 48 characters).
        type: str
        required: true
      privacy_protocol:
        description: Privacy protocol.
        type: str
        default: AES
        choices: [DES, AES]
      privacy_passphrase:
        description: Privacy passphrase (8 to 48 characters).
        type: str
        required: true
      engine_id:
        description: Optional user engine id (C(0x) and an even number of hex digits).
        type: str
  update_passphrases:
    description: Send the SNMPv3 passphrases on every run (then the task always reports a change for existing users).
    type: bool
    default: false
  snmpv1_enabled:
    description:
      - Whether SNMPv1 is on. V(false) also clears the v1 read and trap communities, and sets the firmware 2.90+ flags
        C(SNMPv1RequestsEnabled) and C(SNMPv1TrapEnabled) where the BMC has them.
    type: bool
  snmp_alert_destinations:
    description: SNMP alert (trap) destinations that must exist, matched by address.
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: IP address or FQDN of the trap receiver.
        type: str
        required: true
      protocol:
        description: Trap protocol.
        type: str
        default: SNMPv3Trap
        choices: [SNMPv1Trap, SNMPv3Trap, SNMPv3Inform]
      security_name:
        description: SNMPv3 user for V(SNMPv3Trap) and V(SNMPv3Inform); default the first of O(snmpv3_users).
        type: str
      community:
        description: Trap community for V(SNMPv1Trap).
        type: str
  ipmi_enabled:
    description: Whether IPMI over LAN is on.
    type: bool
  virtual_media_enabled:
    description: Whether the virtual media service is on.
    type: bool
  syslog_server:
    description:
      - Remote syslog server. A non-empty value enables remote syslog; an empty string disables it.
    type: str
  syslog_port:
    description: Remote syslog port.
    type: int
    default: 514
  min_password_length:
    description: Minimum password length of local accounts (0 to 39).
    type: int
  reset_timeout:
    description: Seconds to wait for the BMC to come back after the Manager.Reset.
    type: float
    default: 300
  reset_interval:
    description: Seconds between two readiness polls after the Manager.Reset.
    type: float
    default: 3
attributes:
  check_mode:
    support: full
    description: Only GETs (and, for a separate admin account, one Basic-authenticated GET to compare its password).
  diff_mode:
    support: full
    description: The managed settings before and after; no secrets.
"""

EXAMPLES = r"""
- name: Harden the iLO (credentials from Vault; the CA of the site's iLO certificates)
  bm.lifecycle.ilo_baseline:
    address: "{{ bmc_ip }}"
    username: Administrator
    password: "{{ bmc_password }}"
    ca_path: /etc/bm/ilo-ca.pem
    admin_password: "{{ vault_bmc_new_password }}"
    remove_accounts: [user1, user2]
    min_password_length: 12
    snmpv1_enabled: false
    snmpv3_users:
      - name: monitoring
        auth_passphrase: "{{ vault_snmp_auth }}"
        privacy_passphrase: "{{ vault_snmp_priv }}"
    snmp_alert_destinations:
      - address: 10.1.100.20
    ipmi_enabled: false
    virtual_media_enabled: false
    syslog_server: 10.1.100.10
    syslog_port: 514
  register: baseline
"""

RETURN = r"""
batch:
  description: With O(batch), the items after this step.
  returned: when O(batch) is given
  type: list
  elements: dict
changes:
  description: The steps applied (or, in check mode, that would be); no secrets.
  returned: with O(address)
  type: list
  elements: str
  sample: ["min_password_length", "admin_password", "snmp_enabled ipmi_enabled syslog", "snmpv1"]
reset_required:
  description: Whether the changes (or a pending configuration) need a Manager.Reset, as far as known before applying.
  returned: with O(address)
  type: bool
reset_performed:
  description: Whether the one Manager.Reset was posted.
  returned: with O(address)
  type: bool
reset_type:
  description: The Manager.Reset type posted.
  returned: when RV(reset_performed)
  type: str
  sample: GracefulRestart
reset_wait_seconds:
  description: Seconds waited for the BMC after the reset.
  returned: with O(address)
  type: float
password_changed:
  description: Whether the admin password was (or would be) changed.
  returned: with O(address)
  type: bool
firmware:
  description: The iLO firmware version.
  returned: with O(address)
  type: str
  sample: iLO 5 v2.55
bmc_requests:
  description: HTTP requests sent to the BMC, retries included.
  returned: with O(address)
  type: int
failed_step:
  description: On failure, the step that failed (for example V(read), V(syslog), V(admin_password), V(manager_reset),
    V(wait_for_reset), V(verify)).
  returned: failure
  type: str
  sample: syslog
message_ids:
  description: On failure, the MessageIds of the BMC's C(@Message.ExtendedInfo).
  returned: failure
  type: list
  elements: str
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import check_items, fail, summary
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import RedfishClient, RedfishError, on_bmcs
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_baseline import (
    BASELINE_ARGUMENT_SPEC,
    BaselineError,
    run,
)

FACTS = ("changes", "reset_performed", "firmware")


def for_items(module: LifecycleModule) -> dict[str, Any]:
    """The baseline on the BMC of every active item at once; a BMC that fails fails its item, with the step."""
    params = module.params
    items = check_items(params["batch"])

    def work(client: RedfishClient, item: dict[str, Any]) -> None:
        login = params["credentials"].get(item["device"]["name"]) or {}
        mine = {**params, "admin_username": login.get("username") or params["admin_username"],
                "admin_password": login.get("new_password") or params["admin_password"]}  # fmt: skip
        try:
            result = run(client, mine, check_mode=module.check_mode)
        except BaselineError as error:
            fail(item, error.step, f"hardening step {error.step} failed on BMC {client.display}: {error}")
            return
        item["facts"].update({k: result.get(k) for k in FACTS})
        reset = "one Manager.Reset" if result.get("reset_performed") else "no reset"
        item["facts"]["transition_reason"] = (
            f"BMC baseline applied and verified: {len(result.get('changes') or [])} change(s), {reset}, "
            f"{result.get('firmware')}"
        )

    on_bmcs(params, items, work, module.warn)
    return {"changed": any(i["facts"].get("changes") for i in items), "batch": items, "summary": summary(items)}


def apply(module: LifecycleModule) -> dict[str, Any]:
    """The baseline on the BMC at O(address), or on the batch's."""
    if module.params["batch"] is not None:
        return for_items(module)
    return run(module.bmc, module.params, check_mode=module.check_mode)


def failed_step(error: Exception) -> dict[str, Any]:
    """Where a BMC's error stopped the baseline (V(read) before any step)."""
    return {"failed_step": getattr(error, "step", "read")} if isinstance(error, RedfishError) else {}


def main() -> None:
    """Run the module."""
    module = LifecycleModule(BASELINE_ARGUMENT_SPEC, netbox=False, bmc=True)
    module.run(apply, on_error=failed_step)


if __name__ == "__main__":
    main()
