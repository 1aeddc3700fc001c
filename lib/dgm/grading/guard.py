"""The kernel guard: runs each test cell for the grader, whatever the student's cells did to IPython.

:func:`install` runs inside every grading kernel before any student code (the grader sends this
file's source, see :func:`prelude`). It lives in a private namespace with a copy of the builtins
taken then, registers an audit hook (PEP 578) and snapshots what the tests rely on: builtins, the
modules the test cells import, IPython's and ipykernel's classes and objects, ``sys`` hooks and
signal handlers.

The grader then never sends a test cell to IPython as code. It sends a *marker cell*::

    #dgm-grading-guard TOKEN run BASE64(test source)
    pass

IPython compiles it, which raises a ``compile`` audit event carrying the raw text; the hook
recognises the marker and, inside that event, (1) puts back everything the snapshot holds that a
student changed (library changes are kept), (2) compiles the test source itself with the
original ``compile`` and runs it in the notebook's namespace, (3) fails the test if the code under
test changed the snapshot while it ran, and (4) prints a verdict line signed with a key only the
grader and this guard know (HMAC-SHA256). The grader scores a test cell from that verdict alone:
input transformers, ``compile.ast_parse`` replacements, ``displayhook`` or forged
``execute_result`` messages cannot make a test pass; if they stop the marker from reaching
``compile`` there is no verdict and the test scores 0.

The hook also refuses, while student code runs, the introspection that could reach the guard's
key or rewrite running code: ``sys.addaudithook``, ``sys.settrace``/``setprofile``, ``gc`` object
walks, ``sys._current_frames`` and ctypes' raw memory reads; refused attempts are reported. The
kernel process is made non-dumpable, so that ``/proc/self/mem`` is closed to it. What stays
possible in one process is listed in book/instructors.md ("What the guard cannot stop").

This module imports the standard library only; the grader reads it as text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

MARKER = "#dgm-grading-guard"
TEST_FILE = "<grading test>"


def install(key_hex, marker, modules):  # noqa: C901 - one closure on purpose: nothing of it is reachable
    """Install the guard in this kernel (called once, by the prelude, before any student code)."""
    import _thread
    import base64 as _b64
    import builtins
    import contextvars
    import gc
    import hashlib as _hashlib
    import hmac as _hmac
    import importlib
    import json as _json
    import linecache
    import signal
    import sys
    import threading
    import time
    import types
    import warnings

    key = bytes.fromhex(key_hex)
    _type, _callable, _getattr, _repr, _compile, _exec = type, callable, getattr, repr, compile, exec
    _sorted, _len, _set, _list, _str, _tuple, _dict = sorted, len, set, list, str, tuple, dict
    _setattr_type = type.__setattr__
    _type_dict = type.__dict__["__dict__"].__get__
    _type_mro = type.__dict__["__mro__"].__get__
    MethodType, ModuleType, FunctionType = types.MethodType, types.ModuleType, types.FunctionType
    MISSING = object()
    try:  # /proc/self/mem and ptrace closed to the kernel itself
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except BaseException:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in modules:
            try:
                importlib.import_module(name)
            except BaseException:
                pass
    shell = get_ipython()  # noqa: F821 - the kernel's IPython shell
    kernel = _getattr(shell, "kernel", None)
    packages = {name.split(".")[0] for name in modules} | {"builtins"}
    snap = {}
    blocked_seen = []

    def has_get(value):
        try:
            return any("__get__" in _type_dict(k) for k in _type_mro(_type(value)))
        except BaseException:
            return False

    def guarded(value):
        try:
            return _callable(value) or has_get(value) or _type(value) is ModuleType
        except BaseException:
            return False

    def class_module(cls):
        try:
            name = _type_dict(cls).get("__module__", "")
            return name if _type(name) is _str else ""
        except BaseException:
            return ""

    def take_snapshot():
        mapping_entries, class_entries, instance_entries, classes = [], [], [], {}

        def add_class(cls):
            for klass in _type_mro(cls):
                if klass is not object and klass.__flags__ & (1 << 9) and id(klass) not in classes:
                    classes[id(klass)] = klass

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, value in _list(builtins.__dict__.items()):
                if name not in ("_", "__", "___") and guarded(value):
                    mapping_entries.append([builtins.__dict__, name, value, "builtins." + name])
            module_names = _sorted(n for n, m in _list(sys.modules.items())
                                   if _type(m) is ModuleType and n.split(".")[0] in packages)
            for mod_name in module_names:
                mod = sys.modules[mod_name]
                for name, value in _list(mod.__dict__.items()):
                    if guarded(value):
                        mapping_entries.append([mod.__dict__, name, value, mod_name + "." + name])
                        if _type(value) is type and class_module(value).split(".")[0] in packages:
                            add_class(value)
            for obj in (shell, kernel, _getattr(shell, "compile", None), _getattr(shell, "displayhook", None),
                        _getattr(shell, "display_pub", None), _getattr(kernel, "session", None),
                        _getattr(shell, "input_transformer_manager", None), sys.stdout, sys.stderr):
                if obj is not None:
                    add_class(_type(obj))
            for obj, label in ((shell, "shell"), (kernel, "kernel")):
                if obj is not None:
                    instance_entries.append((obj, label, _dict((k, v) for k, v in obj.__dict__.items()
                                                               if guarded(v))))
            for klass in classes.values():
                for name, value in _list(klass.__dict__.items()):
                    if guarded(value):
                        class_entries.append([klass, klass.__dict__, name, value,
                                              class_module(klass) + "." + klass.__qualname__ + "." + name])
        mapping_entries.append([shell.user_ns, "__builtins__", builtins, "user namespace __builtins__"])
        snap["mapping"], snap["class"], snap["instance"] = mapping_entries, class_entries, instance_entries
        snap["module"] = [[name, sys.modules[name]] for name in module_names] + [["builtins", builtins], ["sys", sys]]
        snap["attr"] = [[shell, name, _getattr(shell, name), "shell." + name]
                        for name in ("user_ns", "compile", "displayhook", "display_pub", "display_formatter",
                                     "events", "input_transformer_manager", "ast_transformers",
                                     "input_transformers_cleanup", "input_transformers_post")]
        snap["attr"] += [[threading, "excepthook", threading.excepthook, "threading.excepthook"]]
        snap["sys"] = [[name, _getattr(sys, name)]
                       for name in ("stdout", "stderr", "displayhook", "excepthook", "unraisablehook", "modules",
                                    "meta_path", "path_hooks")]
        lists = [(shell.input_transformers_cleanup, "shell.input_transformers_cleanup"),
                 (shell.input_transformers_post, "shell.input_transformers_post"),
                 (shell.ast_transformers, "shell.ast_transformers"), (gc.callbacks, "gc.callbacks"),
                 (sys.meta_path, "sys.meta_path")]
        lists += [(callbacks, "shell.events." + event) for event, callbacks in shell.events.callbacks.items()]
        snap["list"] = [[lst, _tuple(lst), label] for lst, label in lists]
        signals = []
        for number in _sorted(signal.valid_signals()):
            try:
                signals.append([number, signal.getsignal(number)])
            except BaseException:
                pass
        snap["signal"] = signals
        return _len(mapping_entries) + _len(class_entries)

    def same(current, original):
        if current is original:
            return True
        return _type(current) is MethodType and _type(original) is MethodType and current == original

    import os.path as _osp
    import site
    import sysconfig

    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += [sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    candidates += site.getsitepackages()
    roots = _tuple(_osp.realpath(c).rstrip("/") + "/" for c in candidates if c)

    def from_library(value, depth=0):
        """True if a value's code lives in the installed libraries (not a notebook cell, not a C function)."""
        if depth > 4:
            return False
        try:
            kind = _type(value)
            if kind in (staticmethod, classmethod):
                return from_library(value.__func__, depth + 1)
            if kind is property:
                parts = [f for f in (value.fget, value.fset, value.fdel) if f is not None]
                return bool(parts) and all(from_library(f, depth + 1) for f in parts)
            if kind is MethodType:
                return from_library(value.__func__, depth + 1)
            if kind is FunctionType:
                name = value.__code__.co_filename
            elif kind is ModuleType:
                name = value.__dict__.get("__file__")
            elif kind is type:
                module = sys.modules.get(class_module(value))
                name = module.__dict__.get("__file__") if _type(module) is ModuleType else None
            elif class_module(kind) == "builtins":
                return False  # a C function or builtin object moved into a new place
            else:
                return from_library(kind, depth + 1)
            return _type(name) is _str and _osp.realpath(name).startswith(roots) and _osp.exists(name)
        except BaseException:
            return False

    def differences():
        """Changes since the snapshot that library code did not make; library changes join the snapshot."""
        found = []
        for entry in snap["mapping"]:
            owner, name, value, label = entry
            current = owner.get(name, MISSING)
            if not same(current, value):
                if current is not MISSING and from_library(current):
                    entry[2] = current
                else:
                    found.append(("map", owner, name, value, label))
        for entry in snap["class"]:
            klass, proxy, name, value, label = entry
            current = proxy.get(name, MISSING)
            if not same(current, value):
                if current is not MISSING and from_library(current):
                    entry[3] = current
                else:
                    found.append(("class", klass, name, value, label))
        for obj, label, snapshot in snap["instance"]:
            for name, value in _list(obj.__dict__.items()):
                if name in snapshot:
                    if not same(value, snapshot[name]):
                        if from_library(value):
                            snapshot[name] = value
                        else:
                            found.append(("inst", obj, name, snapshot[name], label + "." + name))
                elif guarded(value) and any(name in _type_dict(k) for k in _type_mro(_type(obj))):
                    if from_library(value):
                        snapshot[name] = value
                    else:
                        found.append(("shadow", obj, name, None, label + "." + name))
        for entry in snap["module"]:
            name, module = entry
            current = sys.modules.get(name)
            if current is not module:
                if current is not None and from_library(current):
                    entry[1] = current
                else:
                    found.append(("module", None, name, module, "sys.modules[" + _repr(name) + "]"))
        for entry in snap["sys"]:
            name, value = entry
            current = sys.__dict__.get(name, MISSING)
            if current is not value:
                if current is not MISSING and from_library(current):
                    entry[1] = current
                else:
                    found.append(("sys", None, name, value, "sys." + name))
        for entry in snap["list"]:
            lst, snapshot, label = entry
            if _len(lst) != _len(snapshot) or any(a is not b for a, b in zip(lst, snapshot)):
                added = [x for x in lst if not any(x is y for y in snapshot)]
                kept = all(any(y is x for x in lst) for y in snapshot)
                if kept and all(from_library(x) for x in added):
                    entry[1] = _tuple(lst)
                else:
                    found.append(("list", lst, None, snapshot, label))
        for number, handler in snap["signal"]:
            try:
                if signal.getsignal(number) is not handler:
                    found.append(("signal", None, number, handler, "signal " + _str(number)))
            except BaseException:
                pass
        if sys.gettrace() is not None or sys.getprofile() is not None:
            found.append(("trace", None, None, None, "sys.settrace/setprofile"))
        return found

    def restore(found):
        for kind, owner, name, value, label in found:
            try:
                if kind == "map":
                    owner[name] = value
                elif kind == "class":
                    _setattr_type(owner, name, value)
                elif kind == "inst":
                    owner.__dict__[name] = value
                elif kind == "attr":
                    object.__setattr__(owner, name, value)
                elif kind == "shadow":
                    del owner.__dict__[name]
                elif kind == "module":
                    sys.modules[name] = value
                elif kind == "sys":
                    sys.__dict__[name] = value
                elif kind == "list":
                    owner[:] = value
                elif kind == "signal":
                    signal.signal(name, value)
                elif kind == "trace":
                    sys.settrace(None)
                    sys.setprofile(None)
                    threading.settrace(None)
                    threading.setprofile(None)
            except BaseException:
                pass

    def check_and_restore():
        found = differences()
        restore(found)  # classes first: reading the attributes below then runs no student code
        for obj, name, value, label in snap["attr"]:
            if _getattr(obj, name, MISSING) is not value:
                found.append(("attr", obj, name, value, label))
        for name, value in _list(snap.get("pins", {}).items()):
            if _type(shell.user_ns) is _dict and shell.user_ns.get(name, MISSING) is not value:
                found.append(("map", shell.user_ns, name, value, "notebook." + name))
        restore(found)
        return _sorted(_set(entry[4] for entry in found))

    out = sys.stdout
    _get_ident = _thread.get_ident
    guard_threads = _set()  # threads running guard code now: the hook lets them through
    main_threads = {_get_ident()}
    baseline_threads = _set(sys._current_frames())  # the kernel's own threads, before any student code
    handled = _set()
    blocked = frozenset({"sys.addaudithook", "sys.settrace", "sys.setprofile", "gc.get_objects",
                         "gc.get_referrers", "gc.get_referents", "sys._current_frames", "ctypes.string_at",
                         "ctypes.wstring_at", "ctypes.cdata"})
    CodeType = types.CodeType
    _getframe = sys._getframe
    stack_codes = {}  # the code of traceback, logging and warnings: they read frames' file and line, no more
    import logging
    import traceback

    def collect(code):
        stack_codes[id(code)] = code
        for const in code.co_consts:
            if _type(const) is CodeType:
                collect(const)

    for module in (traceback, logging, warnings):
        for value in _list(module.__dict__.values()):
            for item in ([value] if _type(value) is FunctionType else _list(_type_dict(value).values())
                         if _type(value) is type else []):
                item = _getattr(item, "__func__", item)
                if _type(item) is FunctionType:
                    collect(item.__code__)
    enc_key = _hashlib.sha256(b"request" + key).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": the strings are placeholders
        template = _compile('try:\n    ("__DGM_EXEC__")(("__DGM_CODE__"), globals())\n'
                            'except BaseException as __dgm_error:\n'
                            '    ("__DGM_FAIL__")(("__DGM_DESCRIBE__")(__dgm_error))\n'
                            'else:\n    ("__DGM_OK__")()\n', TEST_FILE, "exec", 0, True)
    _type_name = type.__dict__["__name__"].__get__

    def emit(token, action, payload):
        body = " ".join((marker, token, action, _b64.b64encode(_json.dumps(payload).encode()).decode()))
        mac = _hmac.new(key, body.encode(), _hashlib.sha256).hexdigest()
        out.write("\n" + body + " " + mac + "\n")  # on a line of its own, whatever the test printed before
        out.flush()

    def describe(err):
        """(name, message) of an exception, running none of its code (no __str__, no properties)."""
        try:
            name = _type_name(_type(err))
            args = BaseException.__dict__["args"].__get__(err)
            value = args[0] if _type(args) is _tuple and args and _type(args[0]) is _str else ""
            return (name if _type(name) is _str else "Exception"), value[:500]
        except BaseException:
            return "Exception", ""

    def foreign_threads():
        """Threads the notebook started that run notebook code (they could race the test)."""
        found = []
        for ident, frame in _list(sys._current_frames().items()):
            if ident in baseline_threads or ident == _get_ident():
                continue
            while frame is not None:
                code = frame.f_code
                if not from_library_file(code.co_filename):
                    found.append(ident)
                    break
                frame = frame.f_back
        return found

    def from_library_file(name):
        return _type(name) is _str and _osp.realpath(name).startswith(roots) and _osp.exists(name)

    def run_test(blob, token):
        """Run one test in a thread of its own; ``((ename, evalue) or None, stuck)``.

        The test thread starts in C (``Context.run`` -> ``exec``): its frames lead to no guard code,
        and the code objects of the test (the source, the recorders below) cannot be read from it.
        """
        result, done = [], _thread.allocate_lock()
        done.acquire()

        def ok():
            if not result:
                result.append(None)
                done.release()

        def fail(described):
            if not result:
                ok_shape = _type(described) is _tuple and _len(described) == 2 and all(
                    _type(x) is _str for x in described)
                result.append(described if ok_shape else ("Exception", ""))
                done.release()

        stream = _hashlib.shake_256(enc_key + token.encode()).digest(_len(blob))
        test = _compile(bytes(a ^ b for a, b in zip(blob, stream)).decode(), TEST_FILE, "exec", 0, True)
        consts = {"__DGM_EXEC__": _exec, "__DGM_CODE__": test, "__DGM_FAIL__": fail,
                  "__DGM_DESCRIBE__": describe, "__DGM_OK__": ok}
        code = template.replace(co_consts=_tuple(consts.get(c, c) if _type(c) is _str else c
                                                 for c in template.co_consts))
        del test, consts
        user_ns = shell.user_ns
        user_ns["__builtins__"] = builtins
        ident = _thread.start_new_thread(contextvars.copy_context().run, (_exec, code, user_ns))
        del code
        stuck = False
        try:
            done.acquire()
        except KeyboardInterrupt:  # the time limit: stop the test thread too
            try:
                import ctypes

                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))
            except BaseException:
                pass
            stuck = not done.acquire(timeout=5)
            return ("KeyboardInterrupt", "stopped at the time limit"), stuck
        for _ in range(500):  # the thread ends right after reporting
            if ident not in sys._current_frames():
                break
            time.sleep(0.002)
        return result[0] if result else ("Exception", "the test did not report"), stuck

    def handle(source):
        words = source.split("\n", 1)[0].split()
        if _len(words) < 3 or words[1] in handled:
            return
        token, action = words[1], words[2]
        handled.add(token)
        ident = _get_ident()
        guard_threads.add(ident)
        try:
            if action == "snapshot":
                if snap:
                    raise RuntimeError("snapshot taken twice")
                for name in _list(linecache.cache):  # IPython keeps the prelude's text (this key) for tracebacks
                    entry = linecache.cache.get(name)
                    if entry and _len(entry) > 2 and any(key_hex in line for line in entry[2] or ()):
                        del linecache.cache[name]
                emit(token, action, {"status": "ok", "entries": take_snapshot()})
                return
            if not snap:
                raise RuntimeError("no snapshot")
            if action == "pin":  # names a read-only cell just defined: put back before every test
                pins = snap.setdefault("pins", {})
                for name in (words[3].split(",") if _len(words) > 3 else []):
                    if name in shell.user_ns:
                        pins[name] = shell.user_ns[name]
                emit(token, action, {"status": "ok", "pins": _len(pins)})
                return
            if action != "run" or _len(words) < 4 or ident not in main_threads:
                raise RuntimeError("unknown request")
            restored = check_and_restore()
            last = _getattr(shell, "last_execution_result", None)
            if _getattr(sys, "last_traceback", None) is not None or _getattr(last, "error_in_exec", None) is not None:
                for name in ("last_type", "last_value", "last_traceback", "last_exc"):
                    if name in sys.__dict__:
                        sys.__dict__[name] = None
                if last is not None:
                    last.error_in_exec = None
                for formatter in (_getattr(shell, "InteractiveTB", None), _getattr(shell, "SyntaxTB", None)):
                    if formatter is not None and "tb" in formatter.__dict__:
                        formatter.__dict__["tb"] = None  # kept for %debug
                gc.collect()  # frees what a failed cell's frames still held (a memory bomb's list)
            threads = foreign_threads()
            gc_enabled = gc.isenabled()
            failure, stuck = run_test(_b64.b64decode(words[3]), token) if not threads else (
                ("GradingIntegrityError", "a thread started by the notebook was running notebook code"), False)
            gc.disable()  # no student finalizer or gc callback runs in guard code
            try:
                modified = check_and_restore()
                if not threads and foreign_threads():
                    failure = failure or ("GradingIntegrityError", "the code under test left a thread running")
                    threads = ["left running"]
            finally:
                if gc_enabled:
                    gc.enable()
            refused, blocked_seen[:] = _list(blocked_seen), []
            status = "fail" if failure or modified else "pass"
            ename, evalue = failure or ("GradingIntegrityError", "the code under test changed " + ", ".join(modified))
            emit(token, action, {"status": status, "ename": ename if status == "fail" else "",
                                 "evalue": evalue if status == "fail" else "", "restored": restored,
                                 "modified": modified, "refused": refused, "stuck": stuck,
                                 "threads": _len(threads)})
        except BaseException as err:  # noqa: B036
            emit(token, action, {"status": "error", "detail": _repr(_type(err).__name__)})
        finally:
            guard_threads.discard(ident)

    def code_of(obj, name):
        try:
            return object.__getattribute__(obj, name)
        except BaseException:
            return None

    def hook(event, args):
        if _get_ident() in guard_threads:  # the guard's own code (it compiles the tests itself)
            return
        if event == "compile":
            source = args[0] if args else None
            if _type(source) is bytes:
                try:
                    source = source.decode()
                except BaseException:
                    return
            if _type(source) is _str and source.startswith(marker) and (_len(args) < 2 or args[1] != "<>"):
                handle(source)
        elif event == "object.__getattr__":
            if _len(args) == 2 and args[1] in ("f_code", "__code__"):
                ident = _get_ident()
                guard_threads.add(ident)
                try:
                    code = code_of(args[0], args[1])
                    secret = _type(code) is CodeType and code.co_filename == TEST_FILE
                    if secret:  # stack formatting (a lazy CUDA call records where it came from) may look
                        caller = _getframe(1).f_code
                        secret = stack_codes.get(id(caller)) is not caller
                finally:
                    guard_threads.discard(ident)
                if secret:
                    if _len(blocked_seen) < 20:
                        blocked_seen.append("reading the test's code")
                    raise RuntimeError("the grader's test code cannot be inspected")
        elif event in blocked:
            if _len(blocked_seen) < 20:
                blocked_seen.append(event)
            raise RuntimeError(event + " is disabled while a notebook is graded")

    sys.addaudithook(hook)
    emit("prelude", "ready", {"status": "ok"})


# ---- the grader's side ------------------------------------------------------------------------

def prelude(key_hex: str, modules: list[str]) -> str:
    """Kernel code that installs the guard: this file's source, run in a private namespace."""
    source = Path(__file__).read_text() + f"\ninstall({key_hex!r}, {MARKER!r}, {list(modules)!r})\n"
    return (f"exec(compile({source!r}, '<dgm-grading-guard>', 'exec'), "
            "{'__builtins__': dict(__import__('builtins').__dict__), '__name__': '_dgm_grading_guard'})\n")


def request(token: str, action: str, argument: str = "", key: bytes = b"") -> str:
    """The marker cell asking the guard for ``action`` (``snapshot``, ``pin NAMES``, ``run`` + test source).

    A test's source travels encrypted with ``key`` (SHAKE-256 keystream; the token is the nonce), so
    that reading the running request from the kernel reveals nothing of it.
    """
    if action == "run":
        data = argument.encode()
        stream = hashlib.shake_256(hashlib.sha256(b"request" + key).digest() + token.encode()).digest(len(data))
        argument = base64.b64encode(bytes(a ^ b for a, b in zip(data, stream))).decode()
    return f"{MARKER} {token} {action} {argument}".rstrip() + "\npass\n"


def read_verdict(outputs, key: bytes, token: str, action: str) -> dict | None:
    """The guard's signed answer for ``token``/``action`` among a cell's ``outputs``, else None."""
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for line in text.splitlines():
        words = line.split(" ")
        if len(words) == 5 and words[0] == MARKER and words[1] == token and words[2] == action:
            body, mac = line.rsplit(" ", 1)
            if hmac.compare_digest(mac, hmac.new(key, body.encode(), hashlib.sha256).hexdigest()):
                try:
                    return json.loads(base64.b64decode(words[3]))
                except ValueError:
                    return None
    return None


def strip_verdicts(outputs) -> list:
    """``outputs`` without the guard's lines (what the notebook shows)."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream" and MARKER in out.get("text", ""):
            lines = []
            for line in out["text"].splitlines(keepends=True):
                if line.startswith(MARKER):
                    if lines and lines[-1] == "\n":  # the empty line the guard wrote before its verdict
                        lines.pop()
                    continue
                lines.append(line)
            text = "".join(lines)
            if not text:
                continue
            out = {**out, "text": text}
        kept.append(out)
    return kept
