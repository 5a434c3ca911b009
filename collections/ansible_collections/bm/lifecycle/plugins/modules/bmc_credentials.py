#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the action bm.lifecycle.bmc_credentials (the work is done on the controller, in action/)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_credentials
short_description: Read and write a batch's BMC credentials in the Vault-encrypted credential store
version_added: 0.2.0
description:
  - The credential store is one Ansible Vault-encrypted YAML file per device, O(directory)/<device name>.yml, holding
    C(bmc_username), C(bmc_password) (the password the BMC has now) and, while a change is in flight,
    C(bmc_password_pending). Read it with C(ansible-vault view), C(include_vars) or the C(ansible.builtin.file) lookup.
  - O(state=pending), before a BMC is touched, gives every active item's device a pending admin password (kept from an
    interrupted run, else a new random one of O(password_length) characters) and writes it to the file first, so that
    it is never lost; a device without a file starts from the factory credential O(factory_username) /
    O(factory_password). Returns the logins in RV(credentials) (for the next step's C(credentials) option).
  - O(state=current), after the BMC took the new password, makes the pending password the current one.
  - O(state=read) returns the current logins of the devices that have a file in RV(credentials) and changes nothing
    (a device without one is left to the next step's own C(username)/C(password)).
  - An item whose file cannot be read or written fails alone (C(failure.reason) V(credentials) or
    V(store_credential)). Runs on the controller; files are encrypted in memory and replaced atomically (mode 0600,
    directory 0700), so the plaintext never touches the disk.
author: bm-lifecycle developers (@bm-lifecycle)
options:
  batch:
    description: A stage's batch (the previous step's C(batch)).
    type: list
    elements: dict
    required: true
  state:
    description: V(pending) before the BMC is changed, V(current) after, V(read) to read the current logins only.
    type: str
    choices: [pending, current, read]
    default: pending
  directory:
    description: The credential store's directory.
    type: path
    default: /etc/bm/bmc-credentials
  vault_password_file:
    description: The vault password file (or script); E(ANSIBLE_VAULT_PASSWORD_FILE) if not set.
    type: path
  factory_username:
    description: The factory admin account of a device without a file.
    type: str
    default: Administrator
  factory_password:
    description: The factory password of a device without a file (the HPE pull-out tag's, or a site-wide one).
    type: str
  password_length:
    description: Length of a new random admin password.
    type: int
    default: 24
attributes:
  action:
    support: full
    description: Runs on the controller.
  check_mode:
    support: full
    description: Reads the files and reports what would be written; writes nothing.
  diff_mode:
    support: none
    description: Secrets are never shown.
notes:
  - Register the result of O(state=pending) or O(state=read) with C(no_log) - RV(credentials) holds passwords.
"""

EXAMPLES = r"""
- name: Pending admin passwords, stored before any BMC is touched
  bm.lifecycle.bmc_credentials:
    batch: "{{ bm_claim.batch }}"
    directory: /etc/bm/bmc-credentials
    factory_password: "{{ lookup('ansible.builtin.env', 'BM_BMC_PASSWORD') }}"
  register: bm_cred
  no_log: true
"""

RETURN = r"""
batch:
  description: The items after this step.
  returned: always
  type: list
  elements: dict
credentials:
  description:
    - The logins by device name, each C(username) and C(password), and with O(state=pending) C(new_password).
      Secret.
  returned: when state is pending or read
  type: dict
summary:
  description: How many items are in each status after this step.
  returned: always
  type: dict
"""
