# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis connection options of the modules, defined once (documented in doc_fragments/redis.py)."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import (
    REDIS_PASSWORD_ENV,
    REDIS_URL_ENV,
    RedisClient,
    RedisSettings,
)

REDIS_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "redis_url": {"type": "str", "fallback": (env_fallback, [REDIS_URL_ENV])},
    "redis_password": {"type": "str", "no_log": True, "fallback": (env_fallback, [REDIS_PASSWORD_ENV])},
    "redis_username": {"type": "str"},
    "redis_timeout": {"type": "float", "default": 5.0},
}


def redis_argument_spec(**more: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The connection options plus a module's own options."""
    spec = dict(REDIS_ARGUMENT_SPEC)
    spec.update(more)
    return spec


def client_from_params(params: dict[str, Any]) -> RedisClient:
    """A client for a module's validated parameters; raises ValueError for a malformed URL."""
    settings = RedisSettings(params.get("redis_url"), params.get("redis_password"), params.get("redis_username"))
    return RedisClient(settings, timeout=float(params.get("redis_timeout") or 5.0))
