"""nbgrader preprocessors of the course: sandboxed, guarded execution and feedback without hidden tests.

nbgrader_config.py puts :class:`GuardedExecute` in place of nbgrader's ``Execute`` and adds
:class:`HideHiddenTests` to the feedback preprocessors.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Any, Bool, Integer

from dgm.grading import guard, sandbox
from dgm.grading.cells import (hidden_regions, hidden_test_lines, is_test_cell, nbgrader_meta, output_text,
                               test_cell_imports, top_level_names, wrap_test_source)
from dgm.grading.settings import MAX_KERNEL_RESTARTS, MAX_OUTPUT_KB, REPO, grading_root

__all__ = ["GuardedExecute", "HideHiddenTests", "SandboxedKernelManager"]


def _error(ename: str, evalue: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through :func:`dgm.grading.sandbox.kernel_command` when ``sandbox`` (a dict) is set.

    The kernel listens on Unix sockets in the sandbox folder (it has no network to listen on) and
    is interrupted by a message, since a signal to bubblewrap would not reach it.
    """

    sandbox = Any(None, allow_none=True)

    async def _async_pre_start_kernel(self, **kw):
        if self.sandbox:
            folder = self.sandbox["sandbox"]
            self.transport, self.ip = "ipc", os.path.join(folder, "k")
            self.connection_file = os.path.join(folder, "kernel.json")
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if not self.sandbox:
            return cmd
        sandbox.prepare(self.sandbox["sandbox"])  # the connection file, written just now, included
        return sandbox.kernel_command(cmd, self.sandbox)


class GuardedExecute(Execute):
    """nbgrader's Execute, hardened for hostile submissions.

    * ``timeout`` per cell (nbgrader's) and ``notebook_timeout`` for the whole notebook; a cell
      that stops answering is interrupted, and if the interrupt does not work (or the kernel
      dies) the kernel is restarted and the notebook re-run without that cell (at most
      ``max_kernel_restarts`` times): the offending cell gets an error, so a test cell scores 0;
    * the kernel runs in the bubblewrap sandbox (:mod:`dgm.grading.sandbox`; ``sandbox=False``
      only with ``--unsafe-no-sandbox``) with the memory limit ``memory_limit_mb``, in a private
      copy of the notebook's folder without any notebook file;
    * output beyond ``max_output_kb`` per cell is dropped;
    * with ``guard``, test cells are run by the kernel guard (:mod:`dgm.grading.guard`), not by
      IPython: a test cell's outputs are what it printed (stderr shown as stdout, so a warning
      never costs points) plus an error when the guard's signed verdict says it failed or when
      there is no verdict; ``execute_result`` and display outputs of test cells never count.

    Events (timeouts, restarts, integrity failures) are appended as JSON lines to the file
    named by ``DGM_GRADING_EVENTS`` when that variable is set.
    """

    notebook_timeout = Integer(900, help="seconds the whole notebook may run").tag(config=True)
    max_kernel_restarts = Integer(MAX_KERNEL_RESTARTS).tag(config=True)
    memory_limit_mb = Integer(4096, help="address-space limit of the kernel, MiB").tag(config=True)
    max_output_kb = Integer(MAX_OUTPUT_KB, help="output kept per cell, KiB").tag(config=True)
    sandbox = Bool(True, help="run the kernel under bubblewrap (False: limits only, unsafe)").tag(config=True)
    guard = Bool(True, help="run test cells through the kernel guard").tag(config=True)
    protected_paths = Any([], help="folders a sandboxed kernel must not see").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self.shutdown_kernel = "immediate"
        self.iopub_timeout = max(self.iopub_timeout, 20)

    # -- nbclient hooks ------------------------------------------------------------------
    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.sandbox = self._sandbox_config
        return km

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        remaining = max(1, int(self._deadline - time.monotonic()))
        return remaining if timeout is None else min(timeout, remaining)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data"):
            content = msg.get("content", {})
            size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
            used = self._output_used.get(id(outs), 0)
            if used + size > self.max_output_kb * 1024:
                if id(outs) not in self._output_cut:
                    self._output_cut.add(id(outs))
                    outs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text=f"\n[output truncated: more than {self.max_output_kb} kB]\n"))
                    self._event("output_truncated", f"more than {self.max_output_kb} kB")
                if guard.MARKER in content.get("text", ""):  # the guard's verdict is never cut off
                    return super().output(outs, msg, display_id, cell_index)
                return None
            self._output_used[id(outs)] = used + size
        return super().output(outs, msg, display_id, cell_index)

    # -- the notebook loop ---------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._events, self._output_used, self._output_cut = [], {}, set()
        self._name = Path(self.resources.get("nbgrader", {}).get("notebook", "notebook")).name
        self._deadline = time.monotonic() + self.notebook_timeout
        original_path = Path(self.resources.get("metadata", {}).get("path") or ".")
        parent = os.environ.get("DGM_KERNEL_TMP") or None  # the run's folder, removed even if this process is killed
        sandbox_dir = Path(tempfile.mkdtemp(prefix="k-", dir=parent if parent and len(parent) < 64 else None))
        try:
            self._prepare_sandbox(sandbox_dir, original_path)
            self.resources.setdefault("metadata", {})["path"] = str(sandbox_dir / "work")
            self._run_attempts(nb)
        finally:
            self.resources["metadata"]["path"] = str(original_path)
            shutil.rmtree(sandbox_dir, ignore_errors=True)
            self._write_events()
        return self.nb, self.resources

    def _prepare_sandbox(self, sandbox_dir: Path, original: Path):
        for sub in ("work", "home", "tmp", "home/.matplotlib", "home/.ipython"):
            (sandbox_dir / sub).mkdir(parents=True, exist_ok=True)
        if original.is_dir():
            for path in sorted(original.rglob("*")):
                rel = path.relative_to(original)
                if path.is_symlink() or path.suffix == ".ipynb" or not path.is_file():
                    continue
                (sandbox_dir / "work" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, sandbox_dir / "work" / rel)
        try:  # a ready font cache saves every kernel rebuilding it
            import matplotlib

            for font_cache in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
                shutil.copyfile(font_cache, sandbox_dir / "home" / ".matplotlib" / font_cache.name)
        except Exception:
            pass
        protected = [os.path.realpath(p) for p in (REPO, grading_root(), *(self.protected_paths or []))]
        data = os.environ.get("DGM_DATA_DIR", str(REPO / "data"))
        self._sandbox_config = {"sandbox": str(sandbox_dir), "memory_mb": int(self.memory_limit_mb),
                                "protected": protected, "read": [data], "bwrap": bool(self.sandbox)}

    def _run_attempts(self, nb):
        skipped: dict[int, tuple[str, str]] = {}
        for _attempt in range(self.max_kernel_restarts + 1):
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            self._output_used, self._output_cut = {}, set()
            self._index = None
            try:
                with self.setup_kernel():
                    info = self.wait_for_reply(self.kc.kernel_info())
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                    self._key = secrets.token_bytes(32)
                    if self.guard:
                        self._install_guard(nb)
                    self._run_cells(nb, skipped)
                return
            except (DeadKernelError, CellTimeoutError) as err:
                index = self._index
                if index is None:
                    raise
                died = isinstance(err, DeadKernelError)
                reason = ("KernelDied", "the Python kernel died while running this cell (os._exit, a crash in "
                          "compiled code, or the memory limit); the notebook was run again without this cell") \
                    if died else ("KernelUnresponsive", "this cell did not stop when interrupted after the time "
                                  "limit; the kernel was restarted and the notebook run again without this cell")
                skipped[index] = reason
                last = index
                self._event("kernel_died" if died else "kernel_unresponsive", f"cell {self._cell_label(index)}",
                            index)
        # restarts exhausted: what has not run gets an error, so no test cell scores by default
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (index >= last or index in skipped):
                cell.outputs = [_error(*skipped.get(index, (
                    "NotRun", f"grading stopped: the kernel died {len(skipped)} times")))]

    def _run_cells(self, nb, skipped):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            self._index = index
            if index in skipped:
                cell.outputs = [_error(*skipped[index])]
                continue
            if time.monotonic() >= self._deadline:
                self._event("notebook_timeout", f"stopped at cell {self._cell_label(index)}", index)
                for later in nb.cells[index:]:
                    if later.cell_type == "code":
                        later.outputs = [_error("NotebookTimeLimit", "grading stopped before this cell: the "
                                                f"notebook ran longer than {self.notebook_timeout} s")]
                return
            if not is_test_cell(cell):
                self.execute_cell(cell, index, store_history=True)
                meta = nbgrader_meta(cell)
                if self.guard and meta.get("locked") and not meta.get("solution"):
                    names = top_level_names(cell.source)
                    if names and self._ask(index, "pin", ",".join(names)) is None:
                        self._event("integrity", f"could not record the names of {self._cell_label(index)}", index)
            elif self.guard:
                self._run_test(cell, index)
            else:  # without the guard (tests of the guard itself): IPython runs the wrapped test
                source = cell.source
                cell.source = wrap_test_source(source)
                try:
                    self.execute_cell(cell, index, store_history=False)
                finally:
                    cell.source = source

    def _run_test(self, cell, index):
        """Have the guard run a test cell; its outputs: what it printed, and an error unless it passed."""
        token = secrets.token_hex(8)
        probe = self._run_hidden(guard.request(token, "run", wrap_test_source(cell.source), self._key), index)
        verdict = guard.read_verdict(probe.outputs, self._key, token, "run")
        if verdict and verdict.get("stuck"):  # the test's thread ignored the time limit: restart without it
            raise CellTimeoutError("the test did not stop at the time limit")
        label = self._cell_label(index)
        outputs = []
        for out in guard.strip_verdicts(probe.outputs):
            if out.get("output_type") == "stream":
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=out.get("text", "")))
        # errors of the cell itself (the time limit's CellTimeoutError): never a pass, and a clearer reason
        errors = [_error(o.get("ename", "Error"), o.get("evalue", "")) for o in probe.outputs
                  if o.get("output_type") == "error"]
        if verdict is None or verdict.get("status") not in ("pass", "fail"):
            what = ("there is no verdict from the grader for this test: code in this notebook interferes with "
                    "how cells are executed" if verdict is None else "the grader could not run this test")
            outputs += errors or [_error("GradingIntegrityError", what + "; this test scores 0")]
            self._event("integrity", f"{label}: {what}", index)
        else:
            if verdict["status"] == "fail":
                outputs += errors or [_error(verdict.get("ename") or "Error", verdict.get("evalue") or "")]
            else:
                outputs += errors
            if verdict.get("restored"):
                self._event("restored", f"before {label}: {','.join(verdict['restored'])}", index)
            if verdict.get("threads"):
                self._event("integrity", f"{label}: a thread started by the notebook ran notebook code", index)
            if verdict.get("modified"):
                self._event("integrity", f"{label}: the code under test changed {', '.join(verdict['modified'])}",
                            index)
            if verdict.get("refused"):
                self._event("integrity", f"{label}: refused {', '.join(verdict['refused'])}", index)
        cell.outputs = outputs
        cell.execution_count = probe.get("execution_count")

    def _install_guard(self, nb):
        cell = self._run_hidden(guard.prelude(self._key.hex(), test_cell_imports(nb)), len(nb.cells) - 1)
        ready = guard.read_verdict(cell.outputs, self._key, "prelude", "ready")
        snapshot = self._ask(len(nb.cells) - 1, "snapshot") if ready else None
        if snapshot is None or snapshot.get("status") != "ok":
            raise RuntimeError("the grading guard could not be installed:\n"
                               + "\n".join(output_text(o) for o in cell.outputs)[-3000:])

    def _ask(self, index, action, argument=""):
        token = secrets.token_hex(8)
        cell = self._run_hidden(guard.request(token, action, argument), index)
        return guard.read_verdict(cell.outputs, self._key, token, action)

    def _run_hidden(self, code, index):
        """Execute code that is not part of the notebook (nbclient files a cell under an index: put it back)."""
        cell, real = nbformat.v4.new_code_cell(code), self.nb.cells[index]
        try:
            self.execute_cell(cell, index, store_history=False)
        finally:
            self.nb.cells[index] = real
        return cell

    # -- bookkeeping ---------------------------------------------------------------------
    def _cell_label(self, index):
        return nbgrader_meta(self.nb.cells[index]).get("grade_id") or f"#{index + 1}"

    def _event(self, kind, detail, index=None):
        self._events.append({"notebook": self._name, "event": kind, "detail": detail,
                             "cell": None if index is None else self._cell_label(index)})

    def _write_events(self):
        path = os.environ.get("DGM_GRADING_EVENTS")
        if path and self._events:
            with open(path, "a") as f:
                for event in self._events:
                    f.write(json.dumps(event) + "\n")


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback without hidden tests: their source, the tracebacks of test cells, and any output quoting them.

    Hidden-test regions are replaced by a one-line note; an error in a test cell keeps only its
    ``ename: evalue``; an output of any cell that contains a line of the hidden tests (see
    :func:`dgm.grading.cells.hidden_test_lines`) is replaced by a note.
    """

    def preprocess(self, nb, resources):
        import html

        secret = hidden_test_lines(nb)
        variants = secret | {html.escape(line) for line in secret}
        for cell in nb.cells:
            cell.source, _ = hidden_regions(cell.source)
            if cell.cell_type != "code":
                continue
            cleaned = []
            for out in cell.outputs:
                if out.get("output_type") == "error" and is_test_cell(cell):
                    out.traceback = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
                text = output_text(out)
                if any(line in text for line in variants):
                    out = nbformat.v4.new_output("stream", name="stdout",
                                                 text="[this output is not shown: it quoted hidden test code]\n")
                cleaned.append(out)
            cell.outputs = cleaned
        return nb, resources
