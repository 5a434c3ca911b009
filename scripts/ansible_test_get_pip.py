"""Offline stand-in for the get-pip.py that `ansible-test sanity` downloads to bootstrap its test venvs.

ansible-test runs this file as __main__ inside a new, pip-less venv with pip's install arguments. Its download host
is not reachable from our machines, so we bootstrap pip from the interpreter's own ensurepip and let that pip install
what ansible-test asked for from PyPI. ansible-test runs pip isolated from our pip configuration, and the bundled pip
does not use the system trust store, so it is handed the system CA bundle explicitly (the pip it installs does use it).
scripts/test.sh puts this file where ansible-test looks for its cached copy.
"""

import ensurepip
import os
import subprocess
import sys
from pathlib import Path

ca_bundle = next(
    (p for p in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt") if p and Path(p).is_file()),
    None,
)
ensurepip.bootstrap(upgrade=True)
wanted = [arg for arg in sys.argv[1:] if arg not in {"--no-setuptools", "--no-wheel"}]
if ca_bundle:
    wanted[:0] = ["--cert", ca_bundle]
subprocess.check_call([sys.executable, "-m", "pip", "install", *wanted])  # noqa: S603 - our own interpreter and args
