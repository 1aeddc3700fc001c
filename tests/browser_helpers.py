"""Helpers of tests/test_browser.py: Debian's chromium driven by playwright, a guard that fails a
test on any request to another host, a static file server and a Voila server, both on 127.0.0.1.

Never ``playwright install``: the browser is Debian's ``/usr/bin/chromium`` (``make browser``).
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
LOCAL_HOSTS = {"127.0.0.1"}


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


class Guard:
    """Watches a browser context: every request goes through :meth:`_route`, which lets
    requests to 127.0.0.1 (and data:/blob: URLs) through and aborts and records any other;
    web sockets to another host are closed before they connect. Also records responses with
    status >= 400, failed local requests and uncaught JavaScript errors (pageerror).
    :meth:`assert_clean` fails the test if anything was recorded."""

    def __init__(self, context):
        self.external: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.requests = 0
        context.route("**/*", self._route)
        context.route_web_socket(lambda url: not _is_local(url), self._ws)
        context.on("page", self.watch)
        for page in context.pages:
            self.watch(page)

    def _route(self, route) -> None:
        self.requests += 1
        url = route.request.url
        if _is_local(url):
            route.continue_()
        else:
            self.external.append(f"{route.request.method} {url}")
            route.abort("blockedbyclient")

    def _ws(self, ws) -> None:
        self.external.append(f"WEBSOCKET {ws.url}")
        ws.close()

    def watch(self, page) -> None:
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"HTTP {r.status} {r.url}"))
        page.on("requestfailed", self._request_failed)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request_failed(self, request) -> None:
        if _is_local(request.url) and not request.url.startswith(("data:", "blob:")):
            failure = request.failure or ""
            if "ERR_ABORTED" not in failure:  # navigations and images cancelled by the page itself
                self.failed.append(f"{failure} {request.url}")

    def assert_clean(self) -> None:
        errors = self.errors
        problems = (
            [f"request to another host: {u}" for u in self.external]
            + [f"failed local request: {u}" for u in self.failed]
            + [f"uncaught JavaScript error: {e[:300]}" for e in errors]
        )
        assert not problems, "\n".join(problems)


def launch(playwright):
    """Debian's chromium, headless, with no background networking of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def new_context(browser, **kwargs):
    """A fresh browser context (no service workers, so every request is routed) and its Guard."""
    context = browser.new_context(service_workers="block", viewport={"width": 1280, "height": 900}, **kwargs)
    return context, Guard(context)


# ----------------------------------------------------------------------------- servers on 127.0.0.1
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve_directory(root: Path):
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) from a daemon thread.

    Returns ``(base_url, server)``; call ``server.shutdown()`` when done.
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], env: dict[str, str], url: str, log: Path, timeout: float = 120.0):
    """Start ``cmd`` in its own process group, logging to ``log``; wait until ``url`` answers 200.

    Returns the Popen. On a timeout or an early exit, stops it and raises RuntimeError with the
    log's tail.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "wb")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    fh.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"{cmd[:4]} did not serve {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(proc) -> None:
    """Stop a server started by :func:`start_server` and its children (its kernels)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


# ----------------------------------------------------------------------------- waiting for pictures
def wait_for_change(page, read, before, timeout: float = 60.0, settle: float = 0.4):
    """Poll ``read()`` until it differs from ``before``, then until it stops changing for
    ``settle`` seconds (the kernel may send several redraws). Returns the final value.

    Raises AssertionError if nothing changed within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    now = read()
    while now == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing changed within {timeout:.0f} s")
        page.wait_for_timeout(100)
        now = read()
    stable_since = time.monotonic()
    while time.monotonic() - stable_since < settle and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        latest = read()
        if latest != now:
            now, stable_since = latest, time.monotonic()
    return now


def wait_until_stable(page, read, settle: float = 1.0, timeout: float = 30.0):
    """Poll ``read()`` until it has not changed for ``settle`` seconds (first draws arrived)."""
    deadline = time.monotonic() + timeout
    now, stable_since = read(), time.monotonic()
    while time.monotonic() - stable_since < settle and time.monotonic() < deadline:
        page.wait_for_timeout(150)
        latest = read()
        if latest != now:
            now, stable_since = latest, time.monotonic()
    return now
