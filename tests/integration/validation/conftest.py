"""Fixtures of the validation integration tests (defined in validation_support.py, which the tests also import)."""

from __future__ import annotations

from integration.validation.validation_support import _leave_netbox_clean, switches, webhook

__all__ = ["_leave_netbox_clean", "switches", "webhook"]
