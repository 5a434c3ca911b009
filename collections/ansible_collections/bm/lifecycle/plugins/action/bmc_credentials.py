# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action bm.lifecycle.bmc_credentials: the Vault-encrypted BMC credential store, for a batch (see its module docs)."""

from __future__ import annotations

import os
import secrets
import string
from typing import Any

import yaml
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.parsing.vault import VaultLib, get_file_vault_secret
from ansible.plugins.action import ActionBase

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import active, check_items, fail, summary

DEFAULT_DIRECTORY = "/etc/bm/bmc-credentials"
PASSWORD_CHARS = string.ascii_letters + string.digits + "-_.:"
ARGS = ("batch", "state", "directory", "vault_password_file", "factory_username", "factory_password",
        "password_length")  # fmt: skip


def new_password(length: int) -> str:
    """A random BMC password from the characters every iLO accepts."""
    return "".join(secrets.choice(PASSWORD_CHARS) for _position in range(length))


def credential_path(directory: str, name: str) -> str:
    """The credential file of device ``name``."""
    if not name or "/" in name or name.startswith("."):
        raise AnsibleError(f"device name {name!r} cannot name a credential file")
    return os.path.join(directory, f"{name}.yml")


class CredentialStore:
    """One Vault-encrypted YAML file per device, ``<directory>/<device name>.yml``, written atomically (mode 0600)."""

    def __init__(self, directory: str, vault: VaultLib) -> None:
        self.directory = directory
        self.vault = vault

    def path(self, name: str) -> str:
        return credential_path(self.directory, name)

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            with open(self.path(name), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        data = yaml.safe_load(to_text(self.vault.decrypt(raw)))
        if not isinstance(data, dict) or not data.get("bmc_username"):
            raise AnsibleError(f"credential file of {name} does not hold bmc_username/bmc_password")
        return data

    def write(self, name: str, data: dict[str, Any]) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        target = self.path(name)
        plain = {str(k): str(v) for k, v in data.items()}  # task arguments arrive as Ansible's unsafe text types
        cipher = self.vault.encrypt(to_bytes(yaml.safe_dump(plain, default_flow_style=False)))
        fd = os.open(target + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(cipher)
        os.replace(target + ".new", target)


class ActionModule(ActionBase):
    """Reads or writes the batch's BMC credentials on the controller (never on a target, never logged)."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)

    def _store(self) -> CredentialStore:
        """The store of the task's directory, with the vault secret of its password file."""
        args = self._task.args
        password_file = args.get("vault_password_file") or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE", "")
        if not password_file:
            raise AnsibleError("set vault_password_file or ANSIBLE_VAULT_PASSWORD_FILE: the files are Vault-encrypted")
        secret = get_file_vault_secret(filename=password_file, vault_id="default", loader=self._loader)
        secret.load()
        return CredentialStore(args.get("directory") or DEFAULT_DIRECTORY, VaultLib([("default", secret)]))

    def _any_file(self, items: list[dict[str, Any]]) -> bool:
        """Whether any of the items' devices has a credential file."""
        directory = self._task.args.get("directory") or DEFAULT_DIRECTORY
        return any(os.path.exists(credential_path(directory, str(item["device"]["name"]))) for item in items)

    def _pending(self, store: CredentialStore, name: str, check: bool) -> tuple[bool, dict[str, str]]:
        """Keep or make the device's pending password, stored before the BMC is touched; (changed, login)."""
        args = self._task.args
        cred = store.read(name) or {
            "bmc_username": args.get("factory_username") or "Administrator",
            "bmc_password": args.get("factory_password") or "",
        }
        if not cred.get("bmc_password"):
            raise AnsibleError(f"{name}: no stored credential and no factory password (BM_BMC_PASSWORD)")
        pending = cred.get("bmc_password_pending") or new_password(int(args.get("password_length") or 24))
        changed = cred.get("bmc_password_pending") != pending
        if changed and not check:
            store.write(name, {**cred, "bmc_password_pending": pending})
        return changed, {"username": cred["bmc_username"], "password": cred["bmc_password"], "new_password": pending}

    @staticmethod
    def _current(store: CredentialStore, name: str, check: bool) -> None:
        """The pending password becomes the current one."""
        stored = store.read(name)
        if not stored or not stored.get("bmc_password_pending"):
            raise AnsibleError(f"{name}: no pending password to make current")
        if not check:
            store.write(name, {"bmc_username": stored["bmc_username"], "bmc_password": stored["bmc_password_pending"]})

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        state = self._task.args.get("state", "pending")
        try:
            items = check_items(self._task.args.get("batch") or [])
            if state not in ("pending", "current", "read"):
                raise AnsibleError(f"state must be pending, current or read, not {state!r}")
            if state == "read" and not self._any_file(active(items)):
                # Nothing stored yet (no device hardened): every BMC uses the next step's own login, no vault needed.
                return {**result, "changed": False, "batch": items, "summary": summary(items), "credentials": {}}
            store = self._store()
        except (AnsibleError, ValueError, OSError) as exc:
            return {**result, "failed": True, "msg": str(exc)}
        check = bool(self._task.check_mode)
        logins: dict[str, dict[str, str]] = {}
        changed = False
        for item in active(items):
            name = str(item["device"]["name"])
            try:
                if state == "pending":
                    made, logins[name] = self._pending(store, name, check)
                    changed = changed or made
                elif state == "read":
                    stored = store.read(name)
                    if stored is not None:
                        logins[name] = {"username": stored["bmc_username"], "password": stored["bmc_password"]}
                else:
                    self._current(store, name, check)
                    changed = True
            except (AnsibleError, OSError, yaml.YAMLError) as exc:
                fail(
                    item,
                    "store_credential" if state == "current" else "credentials",
                    f"{name}: credential store: {exc}",
                )
        result.update(changed=changed, batch=items, summary=summary(items))
        if state != "current":
            result["credentials"] = logins
        return result
