"""The agent protocol (pure): encoding, strict decoding, versions, the bounded capture."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.agent import protocol, shipping
from fleet.agent.protocol import (
    Bye,
    ErrorReply,
    Fatal,
    FileContent,
    Hello,
    PingRequest,
    Pong,
    ProtocolError,
    ReadReply,
    ReadRequest,
    RunReply,
    RunRequest,
    WriteReply,
    encode_request,
)
from fleet.agent.protocol_decode import decode_hello, decode_reply
from fleet.agent.remote import child, host_files, runner, version

RUN_RESULT = {
    "type": "run_result", "id": 7, "exit_code": None, "signal": 9, "timed_out": True,
    "cancelled": False, "spawn_error": None, "started_monotonic_seconds": 10,
    "ended_monotonic_seconds": 12.5, "started_wall_seconds": 1.7e9, "ended_wall_seconds": 1.7e9,
    "duration_seconds": 2.5, "stdout": "a\n", "stdout_truncated": False,
    "stdout_total_bytes": 2, "stderr": "", "stderr_truncated": False, "stderr_total_bytes": 0,
    "child_max_rss_bytes": 14_352_384, "child_user_cpu_seconds": 0.01,
    "child_system_cpu_seconds": 0.0, "some_future_field": [1, 2],
}


def test_versions_and_names_agree_on_both_sides() -> None:
    assert vars(runner)["PROTOCOL_VERSION"] == protocol.PROTOCOL_VERSION == 4
    assert vars(runner)["AGENT_NAME"] == protocol.AGENT_NAME == version.AGENT_NAME


def top_level_names(path: Path) -> list[str]:
    """What a shipped file defines in the one shared scope (its package-only imports aside)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def test_the_shipped_files_are_the_remote_folder_with_unique_names() -> None:
    remote = Path(runner.__file__).parent
    shipped = shipping.shipped_files()
    assert shipped[0].name == "runner.py"
    assert sorted(shipped) == sorted(p for p in remote.glob("*.py") if p.name != "__init__.py")
    names = [n for path in shipped for n in top_level_names(path) if n != "__all__"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_host_side_source_parses_as_python_3_8() -> None:
    source = shipping.agent_source().decode("utf-8")  # runner.py and its shipped modules
    ast.parse(source, feature_version=(3, 8))
    assert source.isascii()
    ast.parse(shipping.BOOTSTRAP, feature_version=(3, 8))


def test_agent_argv_is_a_constant_without_user_values() -> None:
    assert shipping.AGENT_ARGV[:4] == ("python3", "-I", "-u", "-c")
    assert shipping.AGENT_ARGV[4] == shipping.BOOTSTRAP
    assert shlex.split(shlex.join(shipping.AGENT_ARGV)) == list(shipping.AGENT_ARGV)


def test_encode_run_request_is_one_ascii_json_line() -> None:
    plain = RunRequest(("true",), 5.0, 2.0, 100, 200)
    assert json.loads(encode_request(2, plain)) == {  # the fast path for every case
        "type": "run", "id": 2, "argv": ["true"], "timeout_seconds": 5.0,
        "kill_grace_seconds": 2.0, "stdout_cap_bytes": 100, "stderr_cap_bytes": 200,
        "env": None, "cwd": None}
    request = RunRequest(("printf", "%s", "ü $(x)\n"), 5.0, 2.0, 100, 200,
                         env={"A": "1"}, cwd="/tmp")
    line = encode_request(3, request)
    assert line.endswith("\n") and line.count("\n") == 1 and line.isascii()
    assert json.loads(line) == {
        "type": "run", "id": 3, "argv": ["printf", "%s", "ü $(x)\n"], "timeout_seconds": 5.0,
        "kill_grace_seconds": 2.0, "stdout_cap_bytes": 100, "stderr_cap_bytes": 200,
        "env": {"A": "1"}, "cwd": "/tmp"}
    assert json.loads(encode_request(4, PingRequest())) == {"type": "ping", "id": 4}
    assert json.loads(encode_request(5, ReadRequest(("/a",), 9))) == {
        "type": "read", "id": 5, "paths": ["/a"], "max_bytes": 9}


def test_decode_run_result_checks_types_and_ignores_extra_fields() -> None:
    reply = decode_reply(json.dumps(RUN_RESULT))
    assert isinstance(reply, RunReply) and reply.request_id == 7
    outcome = reply.outcome
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (None, 9, True)
    assert outcome.started_monotonic_seconds == 10.0
    assert isinstance(outcome.started_monotonic_seconds, float)
    assert not outcome.ok


@pytest.mark.parametrize(("field", "value", "message"), [
    ("exit_code", True, "run_result.exit_code is True, expected int"),
    ("exit_code", 1.5, "run_result.exit_code is 1.5, expected int"),
    ("started_monotonic_seconds", None, "run_result.started_monotonic_seconds is None, "
                                        "expected float"),
    ("stdout", 3, "run_result.stdout is 3, expected str"),
    ("timed_out", 0, "run_result.timed_out is 0, expected bool"),
    ("stderr_total_bytes", "0", "run_result.stderr_total_bytes is '0', expected int"),
])
def test_decode_refuses_mistyped_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        decode_reply(json.dumps(dict(RUN_RESULT, **{field: value})))


def test_compact_run_result_round_trips_from_the_agent() -> None:
    """The agent leaves out null/false/""/0-byte fields (version 3); decoding restores them,
    keeps a real 0 (exit code, CPU seconds) and derives the duration."""
    req = {"id": 9, "stdout_cap_bytes": 10, "stderr_cap_bytes": 10}
    quiet = {"stdout": host_files.Capture(10), "stderr": host_files.Capture(10)}
    quiet["stderr"].feed(b"0123456789abc")
    message = child.run_result(req, (1.0, 100.0), (1.25, 100.25), quiet, spawn_error=None,
                               timed_out=False, cancelled=False, exit_code=0, signal=None,
                               child_max_rss_bytes=4096, child_user_cpu_seconds=0.0,
                               child_system_cpu_seconds=0.5)
    assert set(message) == {
        "type", "id", "started_monotonic_seconds", "started_wall_seconds",
        "ended_monotonic_seconds", "ended_wall_seconds", "exit_code", "child_max_rss_bytes",
        "child_user_cpu_seconds", "child_system_cpu_seconds", "stderr", "stderr_total_bytes",
        "stderr_truncated"}
    reply = decode_reply(json.dumps(message))
    assert isinstance(reply, RunReply) and reply.request_id == 9
    outcome = reply.outcome
    assert outcome.ok and outcome.exit_code == 0 and outcome.signal is None
    assert outcome.spawn_error is None and not outcome.timed_out and not outcome.cancelled
    assert outcome.duration_seconds == 0.25
    assert (outcome.stdout, outcome.stdout_truncated, outcome.stdout_total_bytes) == ("", False, 0)
    assert outcome.stderr_truncated and outcome.stderr_total_bytes == 13
    assert outcome.child_user_cpu_seconds == 0.0 and outcome.child_system_cpu_seconds == 0.5


def test_decode_refuses_missing_fields_and_broken_lines() -> None:
    missing = {k: v for k, v in RUN_RESULT.items() if k != "ended_wall_seconds"}
    with pytest.raises(ProtocolError, match=r"^run_result.ended_wall_seconds is missing$"):
        decode_reply(json.dumps(missing))
    with pytest.raises(ProtocolError, match=r"^not a JSON line: 'Traceback \(most"):
        decode_reply("Traceback (most recent call last):\n")
    with pytest.raises(ProtocolError, match=r"^not a JSON object: '\[1\]'"):
        decode_reply("[1]\n")
    with pytest.raises(ProtocolError, match=r"^unknown reply type"):
        decode_reply('{"type": "surprise", "id": 1}')
    with pytest.raises(ProtocolError, match=r"^pong.id is '1', expected int"):
        decode_reply('{"type": "pong", "id": "1", "monotonic_seconds": 1, "wall_seconds": 2}')


def test_decode_the_small_replies() -> None:
    assert decode_reply('{"type":"pong","id":1,"monotonic_seconds":1,"wall_seconds":2.5}') == \
        Pong(1, 1.0, 2.5)
    assert decode_reply('{"type":"bye","id":4}') == Bye(4)
    assert decode_reply('{"type":"error","id":null,"message":"not a JSON object"}') == \
        ErrorReply(None, "not a JSON object")
    read = decode_reply(json.dumps({"type": "read_result", "id": 2, "files": [
        {"path": "/a", "text": "1\n", "truncated": False, "errno": None, "error": None},
        {"path": "/b", "text": None, "truncated": False, "errno": 2, "error": "No such file"}]}))
    assert read == ReadReply(2, (FileContent("/a", "1\n", False, None, None),
                                 FileContent("/b", None, False, 2, "No such file")))
    assert [f.ok for f in read.files] == [True, False]
    write = decode_reply('{"type":"write_result","id":3,"path":"/p","errno":13,'
                         '"error":"Permission denied"}')
    assert isinstance(write, WriteReply) and not write.outcome.ok
    assert write.outcome.errno == 13


def test_decode_hello_and_fatal() -> None:
    hello = decode_hello(json.dumps({
        "type": "hello", "protocol_version": 1, "agent": "fleet-agent",
        "python_version": "3.8.10", "pid": 42, "hostname": "h", "monotonic_seconds": 5,
        "wall_seconds": 1.7e9}))
    assert hello == Hello(1, "fleet-agent", "3.8.10", 42, "h", 5.0, 1.7e9)
    fatal = '{"type": "fatal", "message": "python3 on the host is 3.6.8; needs 3.8"}'
    assert decode_hello(fatal) == Fatal("python3 on the host is 3.6.8; needs 3.8")
    with pytest.raises(ProtocolError, match=r"^expected a hello, got '\{\"type\": \"pong\""):
        decode_hello('{"type": "pong", "id": 1}')
    with pytest.raises(ProtocolError, match=r"^not a JSON line: 'bash: python3: command not"):
        decode_hello("bash: python3: command not found")


# ---- the host side's bounded capture --------------------------------------------------------


def test_capture_keeps_everything_up_to_the_cap() -> None:
    capture = host_files.Capture(10)
    for chunk in (b"abc", b"defg", b"hij"):
        capture.feed(chunk)
    assert capture.text() == ("abcdefghij", False)
    assert capture.total_bytes == 10


def test_capture_keeps_head_and_tail_with_a_marker() -> None:
    capture = host_files.Capture(6)
    capture.feed(b"HEA")
    capture.feed(b"x" * 1000)
    capture.feed(b"AIL")
    assert capture.text() == ("HEA\n[fleet-agent: 1000 bytes omitted]\nAIL", True)
    assert capture.total_bytes == 1006


def test_capture_replaces_invalid_utf8() -> None:
    capture = host_files.Capture(100)
    capture.feed(b"ok \xff\xfe end")
    assert capture.text() == ("ok \ufffd\ufffd end", False)


@given(chunks=st.lists(st.binary(max_size=50), max_size=20), cap=st.integers(0, 120))
def test_capture_is_the_head_and_tail_of_the_whole(chunks: list[bytes], cap: int) -> None:
    whole = b"".join(chunks)
    capture = host_files.Capture(cap)
    for chunk in chunks:
        capture.feed(chunk)
    head, tail = cap // 2, cap - cap // 2
    assert capture.total_bytes == len(whole)
    if len(whole) <= cap:
        assert (bytes(capture.head + capture.tail), capture.text()[1]) == (whole, False)
    else:
        assert bytes(capture.head) == whole[:head]
        assert bytes(capture.tail) == (whole[len(whole) - tail:] if tail else b"")
        assert capture.text()[1] is True
        assert f"[fleet-agent: {len(whole) - cap} bytes omitted]" in capture.text()[0]
