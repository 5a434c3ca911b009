"""Creates (or updates) the stack's NetBox admin user and its v2 API token; run by `netbox shell -c`.

Reads BM_NETBOX_ADMIN_PASSWORD, BM_NETBOX_TOKEN_KEY and BM_NETBOX_TOKEN_SECRET from the environment;
prints nothing secret.
"""

import os

from users.models import Token, User

user, _ = User.objects.get_or_create(username="admin", defaults={"is_superuser": True, "is_active": True})
user.is_superuser = True
user.is_active = True
user.set_password(os.environ["BM_NETBOX_ADMIN_PASSWORD"])
user.save()
Token.objects.filter(user=user, key=os.environ["BM_NETBOX_TOKEN_KEY"]).delete()
Token(user=user, version=2, key=os.environ["BM_NETBOX_TOKEN_KEY"], token=os.environ["BM_NETBOX_TOKEN_SECRET"]).save()
print("admin user and API token ready")
