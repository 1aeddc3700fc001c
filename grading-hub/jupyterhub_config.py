"""JupyterHub for a class of this course: local system users, one JupyterLab each, nbgrader's exchange.

The hub runs as root from the course environment (the repository's `.venv/`, or the hub image's
environment with the same pinned packages): it logs users in with their system password (PAM) and
starts each user's JupyterLab as that user (LocalProcessSpawner), in their home folder, from the same
environment. nbgrader's exchange is a shared folder every user's server can see
(grading-hub/nbgrader_config_hub.py, installed as /etc/jupyter/nbgrader_config.py). The proxy is
configurable-http-proxy, pinned in grading-hub/package.json and installed into grading-hub/node_modules/
by `make hub` (part of `make setup`).

    sudo .venv/bin/jupyterhub -f grading-hub/jupyterhub_config.py

Settings come from the environment, so one file serves the test (tests/test_hub.py) and a real hub:

    DGM_HUB_IP, DGM_HUB_PORT     where students connect (default 127.0.0.1:8000; behind TLS, a reverse proxy)
    DGM_HUB_API_PORT             the hub's internal API, on 127.0.0.1 (default 8081)
    DGM_HUB_PROXY_API_PORT       the proxy's REST API, on 127.0.0.1 (default 8001)
    DGM_HUB_STATE                the hub's database, cookie secret and pid files (default /srv/jupyterhub)
    DGM_HUB_INSTRUCTORS          comma-separated user names: hub admins (they run nbgrader's instructor side)
    DGM_HUB_STUDENTS             comma-separated user names allowed to log in; unset: members of the
                                 group DGM_HUB_GROUP (default dgm-hands-on) may log in
    DGM_HUB_AUTHENTICATOR        default pam (system passwords); any JupyterHub authenticator name

and what every user's server inherits: NBGRADER_EXCHANGE_ROOT, NBGRADER_TIMEZONE, JUPYTER_CONFIG_PATH
(a folder holding the hub's nbgrader_config.py when it is not in /etc/jupyter), DGM_FAST, DGM_DEVICE,
DGM_DATA_DIR. book/instructors.md ("Running a class") says what changes on The Littlest JupyterHub
and on Zero to JupyterHub.
"""

import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (provided by traitlets when JupyterHub loads this file)

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the course environment the hub runs from


def _names(variable: str) -> set[str]:
    return {name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()}


# ---- network: the public port for users; the hub's and the proxy's APIs stay on the loopback -----
c.JupyterHub.bind_url = f"http://{os.environ.get('DGM_HUB_IP', '127.0.0.1')}:{os.environ.get('DGM_HUB_PORT', '8000')}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("DGM_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('DGM_HUB_PROXY_API_PORT', '8001')}"
proxy = HERE / "node_modules" / ".bin" / "configurable-http-proxy"  # `make hub`
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists() else shutil.which("configurable-http-proxy")
                                   or "configurable-http-proxy"]

# ---- the hub's own files ---------------------------------------------------------------------------
state = Path(os.environ.get("DGM_HUB_STATE", "/srv/jupyterhub"))
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")

# ---- who may log in --------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = os.environ.get("DGM_HUB_AUTHENTICATOR", "pam")
instructors, students = _names("DGM_HUB_INSTRUCTORS"), _names("DGM_HUB_STUDENTS")
c.Authenticator.admin_users = instructors
if students:
    c.Authenticator.allowed_users = students | instructors
else:
    c.PAMAuthenticator.allowed_groups = {os.environ.get("DGM_HUB_GROUP", "dgm-hands-on")}

# ---- one JupyterLab per user, as that user, from the course environment ----------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"])}
c.Spawner.env_keep = ["LANG", "LC_ALL", "NBGRADER_EXCHANGE_ROOT", "NBGRADER_TIMEZONE", "JUPYTER_CONFIG_PATH",
                      "DGM_FAST", "DGM_DEVICE", "DGM_DATA_DIR"]
c.Spawner.start_timeout = 120  # a loaded machine: the first import of JupyterLab takes a while
c.Spawner.http_timeout = 120
# Stopping the hub stops every user's server (their processes are not left running).
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
