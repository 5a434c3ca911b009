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
      - Address of one BMC's Redfish service, as C(host), C(host:port), C([v6addr]:port) or C(https://host:port).
      - Give O(address) or O(batch).
    type: str
    aliases: [baseuri]
  batch:
    description:
      - A stage's batch (the previous step's C(batch)). The module works on the BMC of every active item at once, at
        most O(concurrency) in flight, and returns the items; a BMC that fails fails its item alone (C(status=failed),
        C(failure) says why). See docs/ARCHITECTURE.md, "The stage shape".
      - An item's BMC is at O(addresses)[device name], else at the device's oob_ip in NetBox.
    type: list
    elements: dict
  addresses:
    description:
      - With O(batch), BMC addresses (C(host) or C(host:port)) by device name, overriding NetBox's oob_ip (labs).
    type: dict
    default: {}
  credentials:
    description:
      - With O(batch), BMC credentials by device name, each a mapping with C(username) and C(password) (for example
        from an Ansible Vault file); a device not listed uses O(username) and O(password).
    type: dict
    default: {}
  concurrency:
    description:
      - With O(batch), how many BMCs are talked to at once.
    type: int
    default: 32
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
  password:
    description:
      - Password of O(username). Keep it in Ansible Vault or the environment, never in the repository.
      - If not set, the environment variable E(BM_BMC_PASSWORD) is used.
    type: str
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
      - With V(false) and a batch, the BMC's certificate is pinned instead (trust on first use) - its SHA-256 is kept
        with the device in NetBox (custom field C(bmc_tls_sha256)) on first contact, and from then on no request,
        and so no credential, goes to a BMC that presents another certificate (C(failure.reason=bmc_identity)). Either
        way a BMC whose service root states another UUID than the device's C(bmc_uuid) gets no credential.
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
requirements:
  - aiohttp (the one Redfish transport of the collection; imported only when a BMC is called)
notes:
  - iLO registry versions differ by firmware; MessageIds are compared by their last part.
  - The BMCs of a batch are called over one aiohttp session (at most O(concurrency) connections), each with its own
    retries and timeouts.
"""
