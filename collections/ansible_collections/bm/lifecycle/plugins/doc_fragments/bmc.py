# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BMC (Redfish) connection options, documented once for every Redfish module of the collection."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: bm.lifecycle.bmc``."""

    DOCUMENTATION = r"""
options:
  address:
    description:
      - Address of the BMC's Redfish service, as C(host), C(host:port), C([v6addr]:port) or C(https://host:port).
    type: str
    required: true
    aliases: [baseuri]
  port:
    description:
      - HTTPS port of the BMC, used when O(address) names none.
    type: int
    default: 443
  username:
    description:
      - BMC account to log in with.
      - If not set, the environment variable E(BM_BMC_USERNAME) is used.
    type: str
    required: true
  password:
    description:
      - Password of O(username). Keep it in Ansible Vault or the environment, never in the repository.
      - If not set, the environment variable E(BM_BMC_PASSWORD) is used.
    type: str
    required: true
  ca_path:
    description:
      - CA bundle (a PEM file, or a directory of hashed certificates) that signed the BMC's certificate; set it per
        site (group_vars) or per BMC (host_vars).
      - If not set, the environment variable E(BM_BMC_CA_PATH) is used, and else the system trust store.
    type: path
  validate_certs:
    description:
      - Whether to verify the BMC's TLS certificate (against O(ca_path) or the system trust store).
      - V(false) is an explicit, visible choice for lab BMCs with factory self-signed certificates; every use logs a
        warning. Prefer O(ca_path).
      - If not set, the environment variable E(BM_BMC_VALIDATE_CERTS) is used.
    type: bool
    default: true
  auth:
    description:
      - V(basic) sends HTTP Basic authentication on every request (no session to leak; the default).
      - V(session) logs in through C(SessionService/Sessions) and always deletes the session at the end, also on
        failure.
    type: str
    choices: [basic, session]
    default: basic
  timeout:
    description:
      - Seconds to wait for each HTTP answer.
    type: float
    default: 30
  retries:
    description:
      - How many times a request is retried, with bounded exponential backoff, when the BMC answers HTTP 503 or a busy
        MessageId (C(ServiceTemporarilyUnavailable), C(ResourceTemporarilyUnavailable), C(DeviceIsBusy)), or on
        connection errors and timeouts. HTTP 401 (wrong credentials) is never retried.
    type: int
    default: 5
notes:
  - iLO registry versions differ by firmware; MessageIds are compared by their last part.
"""
