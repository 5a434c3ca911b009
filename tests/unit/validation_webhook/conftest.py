"""Fixtures of the validation webhook unit tests (defined in webhook_support.py, which the tests also import)."""

from __future__ import annotations

from unit.validation_webhook.webhook_support import cfg, netbox, report

__all__ = ["cfg", "netbox", "report"]
