# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base of bm.lifecycle modules: the shared options (NetBox, Redis, BMC, tenant, the batch's items), the
clients built on first use, every known error mapped to ``fail_json`` with what was sent, and the clients closed at
exit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import EnvelopeError
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    LockBusy,
    NetBoxClient,
    NetBoxError,
    netbox_argument_spec,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import client_from_params as netbox_client
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    BMC_TARGET_RULES,
    RedfishClient,
    RedfishError,
    bmc_argument_spec,
    redfish_failure,
    require_credentials,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import client_from_params as bmc_client
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisError
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import REDIS_ARGUMENT_SPEC
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import client_from_params as redis_client
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import BusError

TENANT_SPEC = {"tenant": {"type": "str", "fallback": (env_fallback, ["BM_TENANT"])}}
ITEMS_SPEC = {"batch": {"type": "list", "elements": "dict", "required": True}}
EXPECTED_ERRORS = (NetBoxError, RedisError, LockBusy, BusError, EnvelopeError, RedfishError, ValueError, OSError)

# A module's own view of a known error: more result keys for fail_json ("msg" replaces the message).
ErrorHook = Callable[[Exception], dict[str, Any]]


class LifecycleModule(AnsibleModule):
    """An AnsibleModule with the collection's connection options; ``run(body)`` does the rest."""

    def __init__(
        self,
        argument_spec: dict[str, Any],
        *,
        netbox: bool = True,
        redis: bool = False,
        tenant: bool = False,
        items: bool = False,
        bmc: bool = False,
        netbox_requests: bool = True,
        **kwargs: Any,
    ) -> None:
        """``netbox``, ``redis``, ``tenant``, ``items``, ``bmc``: which shared options the module takes (``bmc``
        also one BMC by O(address) or a batch); ``netbox_requests``: whether results report RV(netbox_requests)."""
        spec: dict[str, Any] = {}
        if netbox:
            spec.update(netbox_argument_spec())
        if bmc:
            spec.update(bmc_argument_spec())
            for rule, value in BMC_TARGET_RULES.items():
                kwargs.setdefault(rule, value)
        if redis:
            spec.update(REDIS_ARGUMENT_SPEC)
        if tenant:
            spec.update(TENANT_SPEC)
        if items:
            spec.update(ITEMS_SPEC)
        spec.update(argument_spec)
        kwargs.setdefault("supports_check_mode", True)
        super().__init__(argument_spec=spec, **kwargs)
        self._netbox: NetBoxClient | None = None
        self._redis: RedisClient | None = None
        self._bmc: RedfishClient | None = None
        self._netbox_requests = netbox and netbox_requests

    @property
    def tenant(self) -> str:
        """The tenant whose devices this run may touch."""
        return str(self.params.get("tenant") or DEFAULT_TENANT)

    @property
    def netbox(self) -> NetBoxClient:
        """The NetBox client (built on first use)."""
        if self._netbox is None:
            name = self._name if "." in self._name else f"bm.lifecycle.{self._name}"  # FQCN when Ansible passes it
            self._netbox = netbox_client(self.params, warn=self.warn, user_agent=name)
        return self._netbox

    @property
    def redis(self) -> RedisClient:
        """The Redis client (built on first use)."""
        if self._redis is None:
            self._redis = redis_client(self.params)
        return self._redis

    @property
    def bmc(self) -> RedfishClient:
        """The client of the BMC at O(address) (built on first use; ValueError without credentials)."""
        if self._bmc is None:
            require_credentials(self.params)
            self._bmc = bmc_client(self.params, warn=self.warn)
        return self._bmc

    def counts(self) -> dict[str, Any]:
        """Requests sent so far, for the stage measurements."""
        counts: dict[str, Any] = {}
        if self._netbox_requests:
            counts["netbox_requests"] = self._netbox.requests if self._netbox is not None else 0
        if self._bmc is not None:
            counts["bmc_requests"] = self._bmc.requests
        return counts

    def close(self) -> None:
        """Close the clients that were opened."""
        if self._netbox is not None:
            self._netbox.close()
        if self._redis is not None:
            self._redis.close()
        if self._bmc is not None:
            self._bmc.close()

    def fail(self, msg: str, **result: Any) -> NoReturn:
        """Fail with the request counts, the clients closed."""
        self.close()
        self.fail_json(msg=msg, **{**self.counts(), **result})
        raise AssertionError("unreachable")  # fail_json exits

    def run(self, body: Any, on_error: ErrorHook | None = None) -> NoReturn:
        """``exit_json(**body(self))``; a known error becomes ``fail_json`` saying what failed, with ``retryable``
        (a BMC's error also with ``failure_reason`` and ``message_ids``), plus what ``on_error`` adds."""
        try:
            result = body(self)
        except EXPECTED_ERRORS as exc:
            retryable = getattr(exc, "retryable", not isinstance(exc, (ValueError, BusError, EnvelopeError)))
            extra: dict[str, Any] = {"retryable": retryable}
            if isinstance(exc, RedfishError):
                extra.update(redfish_failure(exc))
            extra.update(on_error(exc) if on_error is not None else {})
            self.fail(str(extra.pop("msg", exc)), **extra)
        if not self._diff:
            result.pop("diff", None)
        result = {**self.counts(), **result}
        self.close()
        self.exit_json(**result)
        raise AssertionError("unreachable")  # exit_json exits


def run_batch_step(options: dict[str, Any], body: Any) -> NoReturn:
    """The ``main()`` of a stage step that works on a batch's items with NetBox and Redis."""
    LifecycleModule(options, redis=True, tenant=True, items=True).run(body)
