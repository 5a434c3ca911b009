#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.validation_token: issue (bound to the server's identity), consume or revoke a device's token."""

from __future__ import annotations

DOCUMENTATION = r"""
module: validation_token
short_description: Issue (bound to the server's identity), consume or revoke a device's single-use validation token
version_added: 0.1.0
description:
  - >-
    O(state=issued) stores in Redis, under C(bm:validation_token:<device_id>) with a TTL (replacing any earlier token
      of the device), the identity the BMC stated over authenticated Redfish (system UUID and serial), and, with
      O(boot_dir), renders the validation image's boot parameters C(bm.device_id=<id> bm.callback=<url> [bm.ca=<path>])
      into a per-device iPXE script (or a bare kernel command line file) in that directory, atomically. No secret is
      in the boot files: the token is created and handed out once, by the validation webhook
      (C(POST /api/v1/validation/token)), to the image that presents the same identity; a second request revokes it
      and fails the device (docs/ARCHITECTURE.md, "The validation token").
  - O(state=consumed) verifies a handed-out O(token) and consumes it in one atomic step (compare-and-set to an
    accepted mark that lasts an hour); a token is accepted at most once; a wrong token changes nothing. The
    validation webhook does the same through C(module_utils/_validation_token.py).
  - O(state=absent) revokes the device's token and removes its boot files.
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.redis
attributes:
  check_mode:
    support: full
    description: Reports what would be issued, consumed or removed; writes nothing and consumes nothing.
  diff_mode:
    support: full
    description: Shows whether a token and boot files exist before and after (never the token).
options:
  device_id:
    description: NetBox id of the device. Give O(device_id) or O(batch).
    type: int
  batch:
    description:
      - A stage's batch (the previous step's C(batch)). O(state=issued) issues a token bound to the system UUID and
        serial the BMC reported in C(facts.system) and renders the boot files for the device of every active item
        (named after the device, that UUID and that serial); an item whose token cannot be issued (for example its
        BMC stated neither UUID nor serial) fails alone (C(failure.reason=validation_token)).
        O(state=absent) revokes the token and removes the boot files of every failed item that had one issued;
        with O(keep_accepted=true), an item whose token a report consumed in the last hour is skipped instead.
      - Each item's C(facts) gain C(token_expires_at) and C(boot_files). See docs/ARCHITECTURE.md, "The stage shape".
    type: list
    elements: dict
  state:
    description: What to do.
    type: str
    choices: [issued, consumed, absent]
    default: issued
  ttl:
    description: Seconds the token is valid (O(state=issued)); longer than the validation timeout.
    type: int
    default: 3600
  token:
    description: The token presented (O(state=consumed)). Never logged.
    type: str
  system:
    description:
      - With O(device_id) and O(state=issued), the server's identity the token is bound to, C({uuid, serial}) (at
        least one), as its BMC states it. With O(batch), each item's C(facts.system) is used.
    type: dict
  keep_accepted:
    description:
      - With O(state=absent) and O(batch), an item whose token the validation webhook consumed within the last hour
        (its report was accepted and waits on the bus) keeps its boot state and becomes C(skipped), so the stage does
        not fail it. The validation timeout uses this; an hour after the acceptance the timeout applies again.
    type: bool
    default: false
  boot_dir:
    description: Directory the PXE HTTP server serves; the boot files are written (or removed) there.
    type: path
  boot_names:
    description:
      - Base names of the boot files, each written as C(<name>.<boot_format>), for example the device name and the
        system UUID the BMC reports (so that a generic iPXE menu can C(chain ${uuid}.ipxe)).
      - Defaults to the device id.
    type: list
    elements: str
  boot_format:
    description: V(ipxe) writes an iPXE script (C(kernel), C(initrd), C(boot)); V(cmdline) only the command line.
    type: str
    choices: [ipxe, cmdline]
    default: ipxe
  kernel_url:
    description: URL of the validation image's kernel (V(ipxe)).
    type: str
  initrd_url:
    description: URL of the validation image's initrd (V(ipxe)).
    type: str
  callback_url:
    description: The validation webhook's report URL, C(bm.callback=). Required with O(boot_dir) when issuing.
    type: str
  callback_ca:
    description: Path of the CA bundle inside the image that verifies an https callback, C(bm.ca=).
    type: str
  kernel_args:
    description: More kernel arguments (one word each), for example C(console=ttyS0).
    type: list
    elements: str
    default: []
  boot_file_mode:
    description: Mode of the boot files. The PXE HTTP server must read them; they hold no secret.
    type: raw
    default: '0644'
"""

EXAMPLES = r"""
- name: Issue a token bound to the server's identity and render the device's iPXE script
  bm.lifecycle.validation_token:
    device_id: 1
    system:
      uuid: 4c4c4544-0042-3610-8030-b2c04f4e3432
      serial: CZJ0000001
    boot_dir: /srv/pxe/bm
    boot_names: [srv001, 4c4c4544-0042-3610-8030-b2c04f4e3432]
    kernel_url: http://10.1.100.5/validation/vmlinuz
    initrd_url: http://10.1.100.5/validation/initrd.img
    callback_url: https://10.1.100.5:5000/api/v1/validation/report
    callback_ca: /etc/bm/ca.pem
    ttl: 3600

- name: Verify and consume a handed-out token
  bm.lifecycle.validation_token:
    device_id: 1
    state: consumed
    token: "{{ presented_token }}"
  register: check
  no_log: true

- name: Revoke (the BMC reset failed)
  bm.lifecycle.validation_token:
    device_id: 1
    state: absent
    boot_dir: /srv/pxe/bm
    boot_names: [srv001]
"""

RETURN = r"""
batch:
  description: With O(batch), the items after this step.
  returned: when O(batch) is given
  type: list
  elements: dict
device_id:
  description: The device.
  returned: always
  type: int
expires_at:
  description: When the issued token expires (UTC), handed out or not.
  returned: when state is issued
  type: str
boot_files:
  description: The boot files written (issued) or removed (absent).
  returned: always
  type: list
  elements: str
kernel_params:
  description: The kernel parameters rendered (no secret among them).
  returned: when state is issued and boot_dir is set
  type: str
  sample: bm.device_id=1 bm.callback=https://10.1.100.5:5000/api/v1/validation/report bm.ca=/etc/bm/ca.pem
valid:
  description: Whether the token was valid (and is now consumed).
  returned: when state is consumed
  type: bool
"""

import os
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import check_items, fail, skip, summary
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import (
    Identity,
    TokenError,
    accepted_at,
    boot_paths,
    issue,
    kernel_params,
    remove_files,
    render,
    revoke,
    ttl_of,
    verify,
    verify_consume,
    write_file,
)


def _mode(value: object) -> int:
    return value if isinstance(value, int) else int(str(value), 8)


def _consume(module: LifecycleModule, redis: RedisClient, before: dict[str, Any], result: dict[str, Any]) -> dict:
    p = module.params
    check = verify if module.check_mode else verify_consume
    result["valid"] = check(redis, p["device_id"], p["token"])
    result["changed"] = result["valid"]
    return {"token": before["token"] and not result["valid"], "boot_files": before["boot_files"]}


def _absent(
    module: LifecycleModule,
    redis: RedisClient,
    before: dict[str, Any],
    result: dict[str, Any],
    paths: list[str],
    *,
    device_id: int,
) -> dict:
    result["changed"] = before["token"] or bool(before["boot_files"])
    result["boot_files"] = before["boot_files"]
    if not module.check_mode:
        revoke(redis, device_id)
        remove_files(paths)
    return {"token": False, "boot_files": []}


def _issue(
    module: LifecycleModule,
    redis: RedisClient,
    result: dict[str, Any],
    paths: list[str],
    *,
    device_id: int,
    identity: Identity,
) -> dict:
    p = module.params
    if not identity:
        raise TokenError("the BMC stated no system UUID or serial to bind the token to")
    content = ""
    if paths:
        if not p["callback_url"]:
            raise TokenError("callback_url is required to render boot files")
        if not os.path.isdir(p["boot_dir"]):
            raise TokenError(f"boot_dir {p['boot_dir']} is not a directory")
        params = kernel_params(device_id, p["callback_url"], p["callback_ca"], p["kernel_args"])
        content = render(
            p["boot_format"],
            params,
            kernel_url=p["kernel_url"],
            initrd_url=p["initrd_url"],
            comment=f"bm-lifecycle validation boot of NetBox device {device_id}; no secret here",
        )
        result["kernel_params"] = params
    result["changed"] = True
    result["boot_files"] = paths
    if not module.check_mode:
        issued = issue(redis, device_id, identity, p["ttl"])
        result["expires_at"] = issued["expires_at"]
        for path in paths:
            write_file(path, content, _mode(p["boot_file_mode"]))
    return {"token": True, "boot_files": paths}


def _one(
    module: LifecycleModule, redis: RedisClient, device_id: int, names: list[str], identity: Identity
) -> dict[str, Any]:
    """Issue, consume or revoke the token of one device; the module's result for it."""
    p = module.params
    result: dict[str, Any] = {"changed": False, "device_id": device_id, "boot_files": []}
    paths = boot_paths(p["boot_dir"], names, p["boot_format"]) if p["boot_dir"] else []
    before = {"token": ttl_of(redis, device_id) is not None, "boot_files": [x for x in paths if os.path.exists(x)]}
    if p["state"] == "consumed":
        after = _consume(module, redis, before, result)
    elif p["state"] == "absent":
        after = _absent(module, redis, before, result, paths, device_id=device_id)
    else:
        after = _issue(module, redis, result, paths, device_id=device_id, identity=identity)
    result["diff"] = {"before": before, "after": after}
    return result


def _for_items(module: LifecycleModule, redis: RedisClient) -> dict[str, Any]:
    """The batch: tokens for the active items, or revocation for the failed ones that had a token."""
    items = check_items(module.params["batch"])
    state = module.params["state"]
    if state == "consumed":
        raise ValueError("state=consumed takes one device_id and its token, not items")
    changed = False
    for item in items:
        facts = item["facts"]
        if state == "absent" and not (item["status"] == "failed" and facts.get("boot_files") is not None):
            continue
        if state == "issued" and item["status"] != "active":
            continue
        accepted = module.params["keep_accepted"] and state == "absent" and accepted_at(redis, item["device"]["id"])
        if accepted:
            skip(item, f"its validation report was accepted at {accepted} and waits on the bus: not failed")
            continue
        system = facts.get("system") or {}
        names = [item["device"]["name"], str(system.get("uuid") or "").lower(), str(system.get("serial") or "")]
        try:
            result = _one(module, redis, int(item["device"]["id"]), [n for n in dict.fromkeys(names) if n],
                          Identity.of(system))  # fmt: skip
        except TokenError as exc:
            fail(item, "validation_token", f"validation token of {item['device']['name']}: {exc}")
            continue
        changed = changed or result["changed"]
        if state == "issued":
            facts.update(token_expires_at=result.get("expires_at"), boot_files=result["boot_files"])
        else:
            facts["token_revoked"] = True
    return {"changed": changed, "batch": items, "summary": summary(items)}


def tokens(module: LifecycleModule) -> dict[str, Any]:
    """The batch's tokens, or the one device's."""
    p = module.params
    if p["batch"] is not None:
        return _for_items(module, module.redis)
    result: dict[str, Any] = {"changed": False, "device_id": p["device_id"], "boot_files": []}
    names = p["boot_names"] or [str(p["device_id"])]
    result.update(_one(module, module.redis, p["device_id"], names, Identity.of(p["system"])))
    return result


def failure(module: LifecycleModule, exc: Exception) -> dict[str, Any]:
    """A TokenError says itself; other errors say the step. With O(device_id), the device's empty result."""
    p = module.params
    more: dict[str, Any] = {} if isinstance(exc, TokenError) else {"msg": f"validation token: {exc}"}
    if p["batch"] is None:
        more.update(changed=False, device_id=p["device_id"], boot_files=[])
    return more


def main() -> None:
    """Run the module."""
    options = {
        "device_id": {"type": "int"},
        "batch": {"type": "list", "elements": "dict"},
        "state": {"type": "str", "choices": ["issued", "consumed", "absent"], "default": "issued"},
        "ttl": {"type": "int", "default": 3600},
        "token": {"type": "str", "no_log": True},
        "system": {"type": "dict"},
        "keep_accepted": {"type": "bool", "default": False},
        "boot_dir": {"type": "path"},
        "boot_names": {"type": "list", "elements": "str"},
        "boot_format": {"type": "str", "choices": ["ipxe", "cmdline"], "default": "ipxe"},
        "kernel_url": {"type": "str"},
        "initrd_url": {"type": "str"},
        "callback_url": {"type": "str"},
        "callback_ca": {"type": "str"},
        "kernel_args": {"type": "list", "elements": "str", "default": []},
        "boot_file_mode": {"type": "raw", "default": "0644"},
    }
    module = LifecycleModule(
        options,
        netbox=False,
        redis=True,
        required_if=[("state", "consumed", ("token", "device_id"))],
        required_one_of=[("device_id", "batch")],
        mutually_exclusive=[("device_id", "batch")],
    )
    module.run(tokens, on_error=lambda exc: failure(module, exc))


if __name__ == "__main__":
    main()
