"""dgm.grading.guard, the grader's side: marker cells hide the test source, only a verdict signed with the run's
key for the right token and action counts, the guard's lines are taken out of what the notebook shows,
and the prelude is valid Python carrying the guard.

The signed lines are made here with hmac/hashlib (the format of the module docstring), not with the guard.
"""

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

import pytest

from dgm.grading import guard

KEY = secrets.token_bytes(32)
TEST = 'import math as _math\nassert _math.isclose(add(0.1, 0.2), 0.3), "add(0.1, 0.2) must be 0.3"\n'


def _line(key: bytes, token: str, action: str, payload, marker: str = guard.MARKER) -> str:
    body = " ".join((marker, token, action, base64.b64encode(json.dumps(payload).encode()).decode()))
    return body + " " + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _blob(cell: str) -> bytes:
    first = cell.split("\n", 1)[0].split(" ")
    assert first[0] == guard.MARKER and first[2] == "run" and len(first) == 4
    return base64.b64decode(first[3], validate=True)


def test_request_hides_the_test_source():
    cell = guard.request("tok123", "run", TEST, KEY)
    first, rest = cell.split("\n", 1)
    assert first.startswith(guard.MARKER + " ") and first.split(" ")[1:3] == ["tok123", "run"]
    assert rest == "pass\n"
    compile(cell, "<marker>", "exec")  # IPython must be able to compile it
    for text in ("isclose", "add(0.1", "must be 0.3", base64.b64encode(TEST.encode()).decode()[:12]):
        assert text not in cell
    blob = _blob(cell)
    assert len(blob) == len(TEST.encode()) and blob != TEST.encode()
    # a keystream fixed by (key, token): a zero message gives it away, and it decrypts the test
    stream = _blob(guard.request("tok123", "run", "\0" * len(TEST), KEY))
    assert bytes(a ^ b for a, b in zip(blob, stream)).decode() == TEST
    assert _blob(guard.request("tok123", "run", TEST, KEY)) == blob
    assert _blob(guard.request("tok124", "run", TEST, KEY)) != blob  # the token is the nonce
    assert _blob(guard.request("tok123", "run", TEST, secrets.token_bytes(32))) != blob
    assert _blob(guard.request("tok123", "run", TEST)) != blob  # without the key: not the same stream
    assert guard.request("tok", "snapshot") == f"{guard.MARKER} tok snapshot\npass\n"
    assert guard.request("tok", "pin", "reference,add") == f"{guard.MARKER} tok pin reference,add\npass\n"


def test_read_verdict_accepts_only_a_line_signed_for_this_token_and_action():
    payload = {"status": "pass", "ename": "", "evalue": "", "restored": [], "modified": [], "refused": []}
    good = _line(KEY, "tok1", "run", payload)
    outputs = [_stream("visible tests passed\n"), _stream(good + "\n")]
    assert guard.read_verdict(outputs, KEY, "tok1", "run") == payload
    # as the guard prints it: on a line of its own after whatever the test printed, maybe without a newline
    printed = [_stream("loss 0.25"), _stream("\n" + good + "\n")]
    assert guard.read_verdict(printed, KEY, "tok1", "run") == payload
    # the line may arrive split over stream messages, after other text
    assert guard.read_verdict([_stream("x\n" + good[:20]), _stream(good[20:] + "\n")], KEY, "tok1", "run") == payload

    assert guard.read_verdict(outputs, secrets.token_bytes(32), "tok1", "run") is None  # another key
    assert guard.read_verdict(outputs, KEY, "tok2", "run") is None  # another token
    assert guard.read_verdict(outputs, KEY, "tok1", "snapshot") is None  # another action
    assert guard.read_verdict([], KEY, "tok1", "run") is None

    body, mac = good.rsplit(" ", 1)
    forged_payload = base64.b64encode(json.dumps({**payload, "status": "fail"}).encode()).decode()
    tampered = " ".join(body.split(" ")[:3] + [forged_payload, mac])
    assert guard.read_verdict([_stream(tampered + "\n")], KEY, "tok1", "run") is None
    other_token = _line(KEY, "tok2", "run", payload)  # signed, but for another test cell
    assert guard.read_verdict([_stream(other_token + "\n")], KEY, "tok1", "run") is None
    assert guard.read_verdict([_stream(good + " extra\n")], KEY, "tok1", "run") is None
    assert guard.read_verdict([_stream("extra " + good + "\n")], KEY, "tok1", "run") is None
    assert guard.read_verdict([_stream(good.upper() + "\n")], KEY, "tok1", "run") is None
    assert guard.read_verdict([_stream(good[:-1] + "\n")], KEY, "tok1", "run") is None  # a truncated mac
    # only printed text counts: a displayed or returned verdict is ignored
    shown = [{"output_type": "execute_result", "data": {"text/plain": good}, "metadata": {}, "execution_count": 1},
             {"output_type": "display_data", "data": {"text/plain": good}, "metadata": {}},
             {"output_type": "error", "ename": "X", "evalue": good, "traceback": [good]}]
    assert guard.read_verdict(shown, KEY, "tok1", "run") is None


def test_read_verdict_signed_garbage_is_no_verdict():
    body = f"{guard.MARKER} tok1 run !!notbase64!!"
    line = body + " " + hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()
    assert guard.read_verdict([_stream(line + "\n")], KEY, "tok1", "run") is None
    body = f"{guard.MARKER} tok1 run {base64.b64encode(b'not json').decode()}"
    line = body + " " + hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()
    assert guard.read_verdict([_stream(line + "\n")], KEY, "tok1", "run") is None


def test_strip_verdicts_removes_only_the_guards_lines():
    verdict = _line(KEY, "tok1", "run", {"status": "pass"})
    outputs = [
        _stream("visible tests passed\n" + verdict + "\nafter\n"),
        _stream(verdict + "\n"),  # nothing else: the whole output goes
        _stream("a student mentions " + guard.MARKER + " mid-line\n"),
        _stream("warning\n", name="stderr"),
        {"output_type": "execute_result", "data": {"text/plain": guard.MARKER}, "metadata": {}, "execution_count": 1},
    ]
    kept = guard.strip_verdicts(outputs)
    assert kept == [_stream("visible tests passed\nafter\n"), outputs[2], outputs[3], outputs[4]]
    # the guard writes "\n" + verdict: that empty line goes too, the student's own empty lines stay
    assert guard.strip_verdicts([_stream("ok\n\n" + verdict + "\n")]) == [_stream("ok\n")]
    assert guard.strip_verdicts([_stream("ok\n\n\n" + verdict + "\n")]) == [_stream("ok\n\n")]
    assert guard.strip_verdicts([_stream("\n" + verdict + "\n")]) == []
    assert outputs[0]["text"].count(guard.MARKER) == 1  # the input is not modified
    assert guard.strip_verdicts([]) == []


def test_prelude_is_python_that_carries_the_guard():
    key_hex = KEY.hex()
    code = guard.prelude(key_hex, ["math", "torch.nn"])
    compile(code, "<prelude>", "exec")
    # the code the prelude execs: the guard's own file, then the call to install with this run's arguments
    import ast

    call = ast.parse(code).body[0].value
    inner = call.args[0].args[0].value
    assert inner.startswith(Path(guard.__file__).read_text())
    compile(inner, "<dgm-grading-guard>", "exec")
    last = ast.parse(inner).body[-1].value
    assert last.func.id == "install"
    assert [ast.literal_eval(a) for a in last.args] == [key_hex, guard.MARKER, ["math", "torch.nn"]]


@pytest.mark.parametrize("token", ["t1", "3f2a" * 8])
def test_a_request_and_its_verdict_line_agree_on_the_marker(token):
    first = guard.request(token, "run", TEST, KEY).split("\n", 1)[0].split(" ")
    line = _line(KEY, token, "run", {"status": "pass"})
    assert line.split(" ")[:3] == first[:3]
    assert guard.read_verdict([_stream(line + "\n")], KEY, token, "run") == {"status": "pass"}
