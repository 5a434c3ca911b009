"""Print what the demo has in NetBox: the lifecycle devices with their state and interfaces."""

from __future__ import annotations

import os

import pynetbox


def main() -> None:
    """List the tenant's devices, their lifecycle state, BMC IP and interface MACs."""
    api = pynetbox.api(os.environ["NETBOX_API"], token=os.environ["NETBOX_TOKEN"])
    tenant = os.environ.get("BM_TENANT", "baremetal-staging")
    devices = list(api.dcim.devices.filter(tenant=tenant))
    print(f"\nNetBox {api.status()['netbox-version']}: {len(devices)} device(s) of tenant {tenant}")
    for device in devices:
        state = (device.custom_fields.get("lifecycle_state") or {}).get("value")
        oob = device.oob_ip.address if device.oob_ip else "-"
        print(f"  {device.name:<10} lifecycle_state={state:<22} oob_ip={oob}")
        for iface in api.dcim.interfaces.filter(device_id=device.id):
            mgmt = " (mgmt)" if iface.mgmt_only else ""
            print(f"    {iface.name:<6} {iface.mac_address or '-':<18}{mgmt}")


if __name__ == "__main__":
    main()
