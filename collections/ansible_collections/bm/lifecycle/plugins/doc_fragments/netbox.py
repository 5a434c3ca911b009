# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NetBox connection options of bm.lifecycle modules, documented once (defined once in module_utils/_netbox.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  netbox_url:
    description:
      - URL of NetBox, for example C(http://127.0.0.1:18000).
      - If not set, the environment variable E(NETBOX_API) is used, then E(NETBOX_URL) (as in netbox.netbox).
    type: str
  netbox_token:
    description:
      - NetBox API token. A v2 token (C(nbt_<key>.<secret>)) is sent in the C(Authorization) header as C(Bearer), a v1
        token as C(Token).
      - If not set, the environment variable E(NETBOX_TOKEN) is used. Never logged.
    type: str
  netbox_validate_certs:
    description:
      - Verify NetBox's TLS certificate (https URLs only). Turning it off logs a warning on every use.
    type: bool
    default: true
  netbox_ca_path:
    description:
      - CA bundle to verify NetBox's certificate with, instead of the system store.
    type: path
  netbox_timeout:
    description:
      - Seconds to wait for each NetBox request.
      - Every request is tried 3 times with exponential backoff on 5xx answers, timeouts and connection errors, and
        never retried on 4xx.
    type: float
    default: 10.0
requirements:
  - pynetbox (and its requests) in the Python that runs the module (the controller's, C(inventory/local.yml)).
notes:
  - A C(POST) whose connection broke after it was sent is not retried (it may have been applied); the module fails
    and the stage is redelivered, which is safe because every stage step is idempotent or compare-and-set.
"""
