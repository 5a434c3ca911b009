"""NetBox configuration for the local stack (loaded through NETBOX_CONFIGURATION=bm_netbox_config).

Secrets and ports come from the environment that scripts/stack.sh sets; nothing secret is committed.
"""

import os

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BM_NETBOX_DB", "netbox"),
        "USER": "netbox",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": os.environ["BM_PG_PORT"],
        "CONN_MAX_AGE": 300,
        # Lets gunicorn survive the per-test database reset (DROP + clone from the template).
        "CONN_HEALTH_CHECKS": True,
    }
}
_redis = {"HOST": "127.0.0.1", "PORT": int(os.environ["BM_REDIS_PORT"]), "PASSWORD": "", "SSL": False}
# Database 0 is the event bus; NetBox keeps to databases 1 and 2.
REDIS = {"tasks": {**_redis, "DATABASE": 1}, "caching": {**_redis, "DATABASE": 2}}
SECRET_KEY = os.environ["BM_NETBOX_SECRET_KEY"]
API_TOKEN_PEPPERS = {1: os.environ["BM_NETBOX_TOKEN_PEPPER"]}
MEDIA_ROOT = os.path.join(os.environ["NETBOX_ROOT"], "media")
TIME_ZONE = "UTC"
