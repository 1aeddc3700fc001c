"""A class on a real JupyterHub: nbgrader's exchange round trip, driven as the users would drive it.

One module-scoped run (``pytest -m hub`` runs it alone; part of `make test`):

* local system users are created: an instructor and three students (``useradd``, passwords set,
  homes 0700), and removed at the end with their homes;
* JupyterHub (pip ``jupyterhub``) with its proxy (npm ``configurable-http-proxy`` from `make hub`)
  starts on 127.0.0.1 with the course's ``grading-hub/jupyterhub_config.py`` (PAM logins, one
  JupyterLab per user, run as that user by LocalProcessSpawner); nbgrader's exchange is a temporary
  folder (mode 1777) and every user's nbgrader reads ``grading-hub/nbgrader_config_hub.py``;
* each user logs in with their password (the login form), starts their server (``/hub/spawn``) and
  opens their JupyterLab through the hub (OAuth), as a browser does;
* the instructor (``runuser``, from the course's clone, course root in their home) generates and
  releases assignment 6 (``nbgrader release_assignment``); each student fetches it
  (``nbgrader fetch_assignment``), opens it in their JupyterLab and saves their answers through it
  (the contents API, with their session's cookies, as JupyterLab saves): one solves everything, one
  half (tests/test_grading.py's HALF), one submits the grading suite's hostile notebook (library
  patches and an input transformer, tests/test_hostile.py); each runs ``nbgrader submit``;
* a student tries to read the others' submissions and the instructor's source through the
  exchange, to move the course's folder away and to reach another student's server: refused;
* the instructor runs ``nbgrader collect``, the course's ``make grade`` (bubblewrap sandbox),
  ``nbgrader generate_feedback`` and ``release_feedback``; each student runs ``fetch_feedback``;
* servers are stopped through the hub's API, the hub is stopped, and no process of the hub, the
  proxy, the servers or the users is left.

Expected scores come from the solution's nbgrader metadata, never from nbgrader. The run needs
root (users, ``runuser``): elsewhere it is skipped with the reason, except under ``CI=true``, where
a missing piece fails it. Where the environment's Python sits in a private folder (a pyenv Python
under /root), the run's users, and only they, get search permission on that folder through a POSIX
ACL (``setfacl``, from `make hub`) while it runs; the ACL is put back exactly as it was.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from test_grading import HALF
from test_hostile import Planter, _feedback_text, _generic_cases, _hidden_lines, _points

pytestmark = pytest.mark.hub

ASSIGNMENT = "06_autoregressive"
COURSE = "dgm-hands-on"  # c.CourseDirectory.course_id in both nbgrader configs
BIN = Path(sys.executable).parent
PROXY = REPO / "grading-hub" / "node_modules" / ".bin" / "configurable-http-proxy"
CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
GRADE = {"JOBS": "3", "GRADE_CELL_TIMEOUT": "120", "GRADE_NOTEBOOK_TIMEOUT": "600", "GRADE_MEMORY_MB": "3072"}


def _cannot(reason: str):
    if CI:
        pytest.fail(f"the hub round trip cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"the hub round trip is skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _private_folders() -> list[Path]:
    """Folders on the way to this environment's Python that other users cannot search (a pyenv
    Python under /root, say): the run lets its own users, and only them, through these."""
    exe = Path(sys.executable)
    folders = {*exe.parents, *exe.resolve().parents}
    return sorted(f for f in folders if not f.stat().st_mode & 0o001)


class Traverse:
    """Search permission (x, not read) for the run's users on private folders, through POSIX ACLs
    (Debian's acl, `make hub`), put back exactly as it was at the end."""

    def __init__(self, folders: list[Path]):
        self.saved = {f: self._acl(f) for f in folders}

    @staticmethod
    def _acl(folder: Path) -> str:
        return subprocess.run(["getfacl", "--absolute-names", "-p", str(folder)], check=True,
                              capture_output=True, text=True).stdout

    def grant(self, users) -> None:
        for folder in self.saved:
            for user in users:
                subprocess.run(["setfacl", "-m", f"u:{user}:x", str(folder)], check=True, capture_output=True)

    def restore(self) -> list[str]:
        problems = []
        for folder, acl in self.saved.items():
            subprocess.run(["setfacl", "--restore=-"], input=acl, text=True, capture_output=True)
            if self._acl(folder) != acl:
                problems.append(f"{folder}: its ACL was not put back")
        return problems


class Users:
    """Local system users for one run, removed (with their homes and processes) at the end."""

    def __init__(self):
        self.prefix = "dgm" + secrets.token_hex(2)
        self.passwords: dict[str, str] = {}
        self.uid: dict[str, int] = {}

    def add(self, role: str) -> str:
        name = f"{self.prefix}{role}"
        subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name], check=True,
                       capture_output=True)
        self.passwords[name] = secrets.token_urlsafe(12)
        self.uid[name] = pwd.getpwnam(name).pw_uid
        subprocess.run(["chpasswd"], input=f"{name}:{self.passwords[name]}\n", text=True, check=True)
        Path(pwd.getpwnam(name).pw_dir).chmod(0o700)
        return name

    def uids(self) -> set[int]:
        return set(self.uid.values())

    def remove(self) -> list[str]:
        import psutil

        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] and proc.info["uids"].real in self.uids():
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        problems = []
        for name in self.passwords:
            result = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True)
            if result.returncode not in (0, 6):  # 6: no such user
                problems.append(f"userdel {name}: {result.stderr.strip()}")
        return problems


class Class:
    """The run's folders, users and commands."""

    def __init__(self, base: Path, users: Users):
        self.base, self.users = base, users
        self.exchange = base / "exchange"
        self.config = base / "nbgrader"  # what /etc/jupyter holds on a real hub
        self.exchange.mkdir()
        self.exchange.chmod(0o1777)  # world-writable and sticky: nobody moves another user's folder
        self.config.mkdir()
        shutil.copyfile(REPO / "grading-hub" / "nbgrader_config_hub.py", self.config / "nbgrader_config.py")
        self.config.chmod(0o755)
        (self.config / "nbgrader_config.py").chmod(0o644)
        self.instructor = users.add("ins")
        self.students = {"solved": users.add("ada"), "half": users.add("bob"), "hostile": users.add("eve")}
        self.grading = self.home(self.instructor) / "grading"

    @staticmethod
    def home(user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def env(self, user: str, **extra) -> dict:
        home = self.home(user)
        env = {"HOME": str(home), "USER": user, "LOGNAME": user, "SHELL": "/bin/bash", "LANG": "C.UTF-8",
               "PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
               "NBGRADER_EXCHANGE_ROOT": str(self.exchange), "JUPYTER_CONFIG_PATH": str(self.config),
               "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
               "JUPYTER_RUNTIME_DIR": str(home / ".local/share/jupyter/runtime"), "DGM_FAST": "1",
               "OMP_NUM_THREADS": "1"}
        if user == self.instructor:
            env["DGM_GRADING_ROOT"] = str(self.grading)
        return {**env, **extra}

    def run(self, user: str, *cmd: str, cwd: Path | None = None, check: bool = True, timeout: float = 600,
            **extra) -> subprocess.CompletedProcess:
        """``cmd`` as ``user`` (runuser), with a clean environment of that user's."""
        env = [f"{k}={v}" for k, v in self.env(user, **extra).items()]
        result = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/env", "-i", *env, *cmd],
                                cwd=cwd or self.home(user), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"as {user}: {' '.join(cmd)} -> exit {result.returncode}\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def nbgrader(self, user: str, *args: str, **kw) -> subprocess.CompletedProcess:
        cwd = REPO if user == self.instructor else None  # the instructor works in the course's clone
        return self.run(user, str(BIN / "python"), "-m", "nbgrader", *args, cwd=cwd, **kw)


class Hub:
    """JupyterHub from grading-hub/jupyterhub_config.py, with an API token for the test's admin service."""

    def __init__(self, klass: Class):
        self.state = klass.base / "hub"
        self.state.mkdir(mode=0o700)
        self.token = secrets.token_hex(32)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.state / "test_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(REPO / 'grading-hub' / 'jupyterhub_config.py')!r})  # noqa: F821\n"
            "# the test's own admin client (what an instructor's script would be given)\n"
            f"c.JupyterHub.services = [{{'name': 'course-test', 'api_token': {self.token!r}}}]\n"
            "c.JupyterHub.load_roles = [{'name': 'course-test', 'services': ['course-test'], 'scopes': "
            "['admin:users', 'admin:servers', 'admin:server_state', 'list:users']}]\n")
        self.env = {"PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]), "LANG": "C.UTF-8",
                    "HOME": str(self.state), "DGM_HUB_PORT": str(self.port),
                    "DGM_HUB_API_PORT": str(_free_port()), "DGM_HUB_PROXY_API_PORT": str(_free_port()),
                    "DGM_HUB_STATE": str(self.state), "DGM_HUB_INSTRUCTORS": klass.instructor,
                    "DGM_HUB_STUDENTS": ",".join(klass.students.values()),
                    "NBGRADER_EXCHANGE_ROOT": str(klass.exchange), "JUPYTER_CONFIG_PATH": str(klass.config),
                    "DGM_FAST": "1"}
        self.proc: subprocess.Popen | None = None
        self.log = self.state / "hub.log"

    def start(self, seconds: float = 120) -> None:
        import requests

        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(self.state / "test_config.py")],
                                         cwd=self.state, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the hub exited:\n{self.tail()}"
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the hub did not answer within {seconds} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def api(self, method: str, path: str, **kw):
        import requests

        response = requests.request(method, f"{self.url}/hub/api{path}", timeout=30,
                                    headers={"Authorization": f"token {self.token}"}, **kw)
        return response

    def wait_for(self, user: str, ready: bool, seconds: float = 240) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            server = model.get("servers", {}).get("")
            if (bool(server and server.get("ready")) == ready) and (ready or not server):
                return model
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server is not {'ready' if ready else 'stopped'} after {seconds} s:\n"
                             f"{self.tail()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def _browser_login(hub: Hub, user: str, password: str):
    """A browser session: the login form, /hub/spawn, then the user's JupyterLab through the hub (OAuth)."""
    import requests

    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    form = {"username": user, "password": password + "x", "_xsrf": session.cookies.get("_xsrf")}
    wrong = session.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=60)
    form["password"] = password
    right = session.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=60)
    return session, wrong.status_code, right.status_code


def _contents(session, hub: Hub, user: str, path: str, model: dict | None = None):
    """GET or PUT a notebook through the user's server, as JupyterLab does (cookies and the _xsrf header)."""
    url = f"{hub.url}/user/{user}/api/contents/{path}"
    headers = {"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{user}/") or ""}
    if model is None:
        return session.get(url, timeout=60, headers=headers)
    return session.put(url, json=model, timeout=60, headers=headers)


PROBE = r"""
import glob, json, os, sys
exchange, course, assignment, source, other_home = sys.argv[1:6]
out = {}
def attempt(name, fn):
    try:
        out[name] = ["allowed", repr(fn())[:300]]
    except OSError as err:
        out[name] = [type(err).__name__, str(err)[:300]]
attempt("list inbound (the others' submissions)", lambda: os.listdir(f"{exchange}/{course}/inbound"))
attempt("glob inbound", lambda: glob.glob(f"{exchange}/{course}/inbound/*") or os.listdir(f"{exchange}/{course}/inbound"))
attempt("list feedback", lambda: os.listdir(f"{exchange}/{course}/feedback"))
attempt("read the instructor's source", lambda: open(source).read())
attempt("list the instructor's course root", lambda: os.listdir(os.path.dirname(os.path.dirname(os.path.dirname(source)))))
attempt("list another student's home", lambda: os.listdir(other_home))
attempt("move the course folder away", lambda: os.rename(f"{exchange}/{course}", f"{exchange}/{course}-moved"))
attempt("write into the release", lambda: open(f"{exchange}/{course}/outbound/{assignment}/extra.py", "w"))
attempt("delete the release", lambda: os.unlink(f"{exchange}/{course}/outbound/{assignment}/{assignment}.ipynb"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hub_class():
    if sys.platform != "linux":
        pytest.skip("the hub round trip needs Linux (local users, runuser, bubblewrap)")
    if os.geteuid() != 0:
        _cannot("it creates local system users (an instructor and three students) and runs commands as them: "
                "run the tests as root (as CI does)")
    missing = [tool for tool in ("useradd", "userdel", "chpasswd", "runuser", "bwrap", "make")
               if not shutil.which(tool)]
    if missing:
        _cannot(f"{', '.join(missing)} not found (bwrap: `make sandbox`)")
    if not PROXY.exists():
        pytest.fail(f"{PROXY.relative_to(REPO)} is missing: run `make hub` (part of `make setup`)", pytrace=False)
    private = _private_folders()
    if private and not (shutil.which("setfacl") and shutil.which("getfacl")):
        _cannot(f"{', '.join(map(str, private))} (on the way to this environment's Python) cannot be searched by "
                "other users, and setfacl, which would let the test's users through, is missing: `make hub`")

    import psutil

    start = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="dgmhub-"))
    base.chmod(0o755)
    users = Users()
    traverse = Traverse(private)
    record: dict = {"timings": {}}
    hub = None
    try:
        klass = Class(base, users)
        traverse.grant(users.passwords)
        record["private_folders"] = [str(f) for f in private]
        record.update(instructor=klass.instructor, students=klass.students, grading=klass.grading, uid=users.uid)
        hub = Hub(klass)
        hub.start()
        record["timings"]["hub up"] = time.monotonic() - start
        hub_pid = hub.proc.pid
        record["users_listed"] = {u["name"]: u["admin"] for u in hub.api("GET", "/users").json()}

        # every user logs in with the form and starts their server; it runs as them, from their home
        sessions, record["logins"], record["servers"] = {}, {}, {}
        everyone = [klass.instructor, *klass.students.values()]
        for user in everyone:
            session, wrong, right = _browser_login(hub, user, users.passwords[user])
            record["logins"][user] = (wrong, right)
            session.get(f"{hub.url}/hub/spawn", timeout=60, allow_redirects=False)
            sessions[user] = session
        for user in everyone:
            model = hub.wait_for(user, ready=True)
            pid = model["servers"][""]["state"]["pid"]
            proc = psutil.Process(pid)
            lab = sessions[user].get(f"{hub.url}/user/{user}/lab", timeout=120)  # OAuth through the hub
            record["servers"][user] = dict(pid=pid, uid=proc.uids().real, cwd=proc.cwd(), lab=lab.status_code,
                                           lab_is_jupyterlab="jupyterlab" in lab.text.lower(),
                                           expected_uid=pwd.getpwnam(user).pw_uid, home=str(klass.home(user)))
        record["timings"]["servers up"] = time.monotonic() - start

        # the instructor generates assignment 6 in their course root and releases it through the exchange
        klass.run(klass.instructor, str(BIN / "python"), "-c",
                  "from dgm.course import generate_assignments; "
                  f"generate_assignments(release_to=None, names=[{ASSIGNMENT!r}])", cwd=REPO)
        klass.nbgrader(klass.instructor, "release_assignment", ASSIGNMENT)
        source = klass.grading / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        solution = nbformat.read(source, as_version=4)
        record["solution"] = solution

        # students fetch, work in their JupyterLab (saved through the contents API), submit
        path = f"{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
        record["fetched_has_hidden"], record["saved"] = {}, {}
        for role, user in klass.students.items():
            klass.nbgrader(user, "fetch_assignment", ASSIGNMENT)
            got = _contents(sessions[user], hub, user, path)
            assert got.status_code == 200, (user, got.status_code, got.text[:500])
            fetched = nbformat.from_dict(got.json()["content"])
            text = nbformat.writes(fetched)
            record["fetched_has_hidden"][user] = "BEGIN HIDDEN TESTS" in text or "BEGIN SOLUTION" in text
            planter = Planter(fetched, solution)
            if role == "solved":
                nb = planter.solved()
            elif role == "half":
                nb = planter.solved(only=HALF[ASSIGNMENT][0])
            else:
                nb = next(c.nb for c in _generic_cases(ASSIGNMENT, planter) if c.student.startswith("cheats_"))
            put = _contents(sessions[user], hub, user, path,
                            {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))})
            record["saved"][user] = put.status_code
            on_disk = klass.home(user) / path
            record.setdefault("owner", {})[user] = on_disk.stat().st_uid
            klass.nbgrader(user, "submit", ASSIGNMENT)
        record["timings"]["submitted"] = time.monotonic() - start

        # the hostile student probes the exchange and the others' servers
        eve, ada = klass.students["hostile"], klass.students["solved"]
        probe = [str(BIN / "python"), "-c", PROBE, str(klass.exchange), COURSE, ASSIGNMENT, str(source),
                 str(klass.home(ada))]
        record["probe"] = json.loads(klass.run(eve, *probe).stdout)
        moved = record["probe"]["move the course folder away"]
        assert moved[0] != "allowed", f"a student moved the course's folder out of the exchange (is it sticky?): {moved}"
        record["inbound"] = sorted(p.name for p in (klass.exchange / COURSE / "inbound").iterdir())
        record["cross_server"] = _contents(sessions[eve], hub, ada, path).status_code
        record["fetch_unreleased"] = klass.nbgrader(eve, "fetch_assignment", "08_capstone", check=False).returncode

        # the instructor collects, grades with the course's `make grade`, makes and releases feedback
        klass.nbgrader(klass.instructor, "collect", ASSIGNMENT)
        record["collected"] = sorted(p.name for p in (klass.grading / "submitted").iterdir())
        t0 = time.monotonic()
        klass.run(klass.instructor, "make", "-o", ".venv/.dgm-installed", "grade",
                  *(f"{k}={v}" for k, v in GRADE.items()), cwd=REPO, timeout=1200)
        record["timings"]["make grade (s)"] = time.monotonic() - t0
        klass.nbgrader(klass.instructor, "generate_feedback", ASSIGNMENT)
        klass.nbgrader(klass.instructor, "release_feedback", ASSIGNMENT)
        record["probe_after_feedback"] = json.loads(klass.run(eve, *probe).stdout)  # feedback/ exists now
        with open(klass.grading / "grades.csv", newline="") as f:
            record["scores"] = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)
                                if r["assignment"] == ASSIGNMENT}
        with open(klass.grading / "report.csv", newline="") as f:
            record["notes"] = {r["student"]: r["notes"] for r in csv.DictReader(f)}
        record["feedback"] = {}
        for user in klass.students.values():
            klass.nbgrader(user, "fetch_feedback", ASSIGNMENT)
            pages = sorted((klass.home(user) / COURSE / ASSIGNMENT / "feedback").rglob(f"{ASSIGNMENT}.html"))
            record["feedback"][user] = [(_feedback_text(p), p.stat().st_uid) for p in pages]

        # servers stopped through the hub's API, then the hub itself
        record["before_stop"] = {u: m["servers"] != {} for u, m in
                                 ((u, hub.api("GET", f"/users/{u}").json()) for u in everyone)}
        for user in everyone:
            assert hub.api("DELETE", f"/users/{user}/server").status_code in (202, 204)
        for user in everyone:
            hub.wait_for(user, ready=False)
        record["after_stop"] = {u: hub.api("GET", f"/users/{u}").json()["servers"] for u in everyone}
        record["server_pids_alive"] = [s["pid"] for s in record["servers"].values() if psutil.pid_exists(s["pid"])
                                       and psutil.Process(s["pid"]).status() != psutil.STATUS_ZOMBIE]
        descendants = [p.pid for p in psutil.Process(hub_pid).children(recursive=True)]
        record["proxy_running"] = any("configurable-http-proxy" in " ".join(psutil.Process(p).cmdline())
                                      for p in descendants if psutil.pid_exists(p))
        record["hub_rc"] = hub.stop()
        time.sleep(1)
        record["left_over"] = []
        for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if (proc.info["pid"] in descendants or (proc.info["uids"] and proc.info["uids"].real in users.uids())
                    or str(base) in cmdline):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    record["left_over"].append(f"{proc.info['pid']}: {cmdline[:200]}")
        try:
            os.killpg(hub_pid, 0)
            record["hub_group_alive"] = True
        except ProcessLookupError:
            record["hub_group_alive"] = False
        record["timings"]["total (s)"] = time.monotonic() - start
        print("hub round trip timings:", {k: round(v, 1) for k, v in record["timings"].items()})
    finally:
        if hub is not None:
            hub.stop()
            record["hub_log"] = hub.tail()
        record["acl_left"] = traverse.restore()
        record["userdel"] = users.remove()
        record["users_gone"] = [name for name in users.passwords if _exists(name)]
        shutil.rmtree(base, ignore_errors=True)
        _save(record)
    return record


def _save(record: dict) -> None:
    """What the run saw, for a look after it (test-output/hub/): run.json and the hub's log."""
    out = REPO / "test-output" / "hub"
    out.mkdir(parents=True, exist_ok=True)
    (out / "hub.log").write_text(record.get("hub_log", ""))
    skip = {"solution", "hub_log", "feedback"}
    summary = {k: v for k, v in record.items() if k not in skip}
    summary["feedback"] = {user: [text[:2000] for text, _ in pages] for user, pages in record.get("feedback", {}).items()}
    (out / "run.json").write_text(json.dumps(summary, indent=1, default=str))


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _expected(record) -> dict:
    solution = record["solution"]
    return {record["students"]["solved"]: _points(solution),
            record["students"]["half"]: _points(solution, HALF[ASSIGNMENT][1]),
            record["students"]["hostile"]: 0.0}


def test_the_hub_served_every_user(hub_class):
    everyone = [hub_class["instructor"], *hub_class["students"].values()]
    assert hub_class["users_listed"] == {u: u == hub_class["instructor"] for u in everyone}, hub_class["users_listed"]
    assert hub_class["logins"] == {u: (403, 302) for u in everyone}, "a wrong password is refused, the right one logs in"
    for user, server in hub_class["servers"].items():
        assert server["uid"] == server["expected_uid"], f"{user}'s server does not run as {user}"
        assert server["cwd"] == server["home"]
        assert server["lab"] == 200 and server["lab_is_jupyterlab"], f"{user} did not get JupyterLab through the hub"
    assert all(hub_class["before_stop"].values()) and hub_class["after_stop"] == {u: {} for u in everyone}


def test_students_work_in_their_own_jupyterlab(hub_class):
    for user in hub_class["students"].values():
        assert not hub_class["fetched_has_hidden"][user], "the released notebook holds hidden tests or solutions"
        assert hub_class["saved"][user] == 200, f"{user} could not save through JupyterLab"
        assert hub_class["owner"][user] == hub_class["uid"][user], "the saved notebook is not the student's"


def test_collect_and_make_grade_give_each_student_their_points(hub_class):
    expected = _expected(hub_class)
    assert hub_class["collected"] == sorted(expected)
    assert 0 < expected[hub_class["students"]["half"]] < expected[hub_class["students"]["solved"]]
    assert hub_class["scores"] == expected, hub_class["scores"]
    assert "integrity" in hub_class["notes"][hub_class["students"]["hostile"]]


def test_no_student_reads_another_submission_or_the_source(hub_class):
    for probe in ("probe", "probe_after_feedback"):  # before feedback/ exists, then after release_feedback
        allowed = {name: outcome for name, outcome in hub_class[probe].items() if outcome[0] != "PermissionError"
                   and not (probe == "probe" and name == "list feedback")}
        assert not allowed, f"the hostile student was not refused ({probe}): {allowed}"
    assert len(hub_class["inbound"]) == 3, "one submission per student in the exchange"
    for name in hub_class["inbound"]:  # hidden by an unguessable name in a folder students cannot list
        assert re.fullmatch(rf"[^+]+\+{ASSIGNMENT}\+[^+]+\+[A-Za-z0-9_=-]{{12}}", name), name
    assert hub_class["cross_server"] in (403, 404), "a student reached another student's server"
    assert hub_class["fetch_unreleased"] != 0, "an assignment that was not released could be fetched"


def test_every_student_fetches_feedback_without_hidden_tests(hub_class):
    hidden = _hidden_lines(hub_class["solution"])
    expected = _expected(hub_class)
    for user, pages in hub_class["feedback"].items():
        assert len(pages) == 1, f"{user} fetched {len(pages)} feedback pages"
        text, owner = pages[0]
        assert owner == hub_class["uid"][user], "the fetched page is not the student's"
        scores = re.findall(r"Score:\s*([0-9.]+)\s*/\s*([0-9.]+)", text)
        assert scores and float(scores[0][0]) == expected[user], (user, expected[user], scores[:3])
        assert not [line for line in hidden if line in text], f"{user}'s feedback shows hidden tests"


def test_everything_is_torn_down(hub_class):
    assert not hub_class["server_pids_alive"], "a user's server outlived its stop"
    assert hub_class["proxy_running"], "the proxy was not a child of the hub (nothing checked)"
    assert hub_class["hub_rc"] == 0, hub_class.get("hub_log", "")
    assert not hub_class["left_over"], hub_class["left_over"]
    assert not hub_class["hub_group_alive"]
    assert not hub_class["userdel"] and not hub_class["users_gone"], (hub_class["userdel"], hub_class["users_gone"])
    assert not hub_class["acl_left"], hub_class["acl_left"]
