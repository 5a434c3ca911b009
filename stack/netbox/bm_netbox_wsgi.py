"""WSGI entry point of the local NetBox: the packaged app plus its static files (no collectstatic, no nginx)."""

from django.contrib.staticfiles.handlers import StaticFilesHandler
from netbox.wsgi import application as netbox_application

application = StaticFilesHandler(netbox_application)
