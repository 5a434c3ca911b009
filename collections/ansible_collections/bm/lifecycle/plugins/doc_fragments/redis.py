# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of every bm.lifecycle module that talks to the Redis event bus."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  redis_url:
    description:
      - URL of the Redis event bus, V(redis://host:port/db), V(rediss://...) (TLS) or V(unix:///path.sock?db=N).
      - Put the password in O(redis_password), not in the URL; a password in the URL works but is only redacted from
        messages, not hidden by C(no_log).
      - If not set, the environment variable E(BM_REDIS_URL) is used, then V(redis://127.0.0.1:6379/0).
    type: str
  redis_password:
    description:
      - Password of the Redis user (C(AUTH)). Falls back to the environment variable E(BM_REDIS_PASSWORD).
    type: str
  redis_username:
    description:
      - Redis ACL user name for C(AUTH); the default user if not set.
    type: str
  redis_timeout:
    description:
      - Seconds each network operation with Redis may take.
    type: float
    default: 5.0
requirements:
  - redis (redis-py) in the Python that runs the module (the controller's, C(inventory/local.yml)).
"""
