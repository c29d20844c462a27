"""A name is only text on the screen: device names, agent names, op names, block keys and error texts are shown
literally (never as rich markup), their control characters escaped; none crashes a command or moves the cursor."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
from typer.testing import CliRunner

from agent.testing import AgentProcess, start_agent_process
from lut import DeviceSetting, LutStore, import_files
from lutnas._text import EscapingFormatter, escape_controls, literal
from lutnas.cli import app
from protos import agent_pb2, agent_pb2_grpc
from tests.conftest import SHARED_DATA

# A stray closing tag (MarkupError), a hyperlink, a terminal-title OSC ended by BEL, clear-screen, a bidi override.
HOSTILE = "[/x] [link=file:///etc/passwd]evil[/link] \x1b]0;pwn\x07 \x1b[2J \u202egnp.exe"
SHOWN = "[/x] [link=file:///etc/passwd]evil[/link] \\x1b]0;pwn\\x07 \\x1b[2J \\u202egnp.exe"
RAW = ("\x1b", "\x07", "\u202e")
NOTE10_160 = SHARED_DATA / "ofa" / "note10" / "160_lookup_table.yaml" if SHARED_DATA else Path("/nonexistent")
ARCH = '{"ks": [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], "e": [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, ' \
       '3, 3, 3, 3, 3, 3, 3, 3, 3, 3], "d": [2, 2, 2, 2, 2], "r": 160}'
WIDE = {"COLUMNS": "400"}  # a name fits in one table cell, so the test can find it whole


def _cli(*args: object, code: int = 0):
    """``lutnas ARGS`` in-process; checks the exit code and that nothing raw or crashed reached the output."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE)
    output = result.stdout + result.stderr
    assert result.exit_code == code, output
    assert "MarkupError" not in output and "Traceback" not in output, output
    for char in RAW:
        assert char not in output, f"raw {char!r} reached the terminal: {output!r}"
    return result


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shows_hostile(text: str) -> bool:
    return _one_line(SHOWN) in _one_line(text)


def _need_note10() -> None:
    if not NOTE10_160.is_file():
        pytest.skip("OFA's note10 LUT (shared data) not found")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store holding OFA's note10 LUT at 160 px twice: under the hostile name and as ``twin``."""
    _need_note10()
    db = tmp_path_factory.mktemp("store") / "lut.db"
    with LutStore(db) as lut_store:
        for name in (HOSTILE, "twin"):
            import_files(lut_store, DeviceSetting(name, "unknown"), [NOTE10_160])
    return db


# -- the helper ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, shown", [
    ("\x1b[2J", "\\x1b[2J"),
    ("bell\x07", "bell\\x07"),
    ("\x9b31m", "\\x9b31m"),  # C1 CSI: one byte that starts an escape sequence on some terminals
    ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
    ("\x7f", "\\x7f"),
    ("abc\u202edef\u2066", "abc\\u202edef\\u2066"),  # bidi overrides and isolates
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("line\u2028sep", "line\\u2028sep"),
    ("bad\udcffbyte", "bad\\udcffbyte"),  # a lone surrogate from undecodable bytes
    ("\U000e0001tag", "\\U000e0001tag"),
    ("café 東京 ｐｉ 🙂 a\u00a0b\u3000c", "café 東京 ｐｉ 🙂 a\u00a0b\u3000c"),  # ordinary unicode and spaces stay
    ("[bold]x[/] [/x]", "[bold]x[/] [/x]"),
])
def test_escape_controls(text: str, shown: str) -> None:
    assert escape_controls(text) == shown


def test_literal_never_reads_markup() -> None:
    text = literal(("warning:", "yellow"), " ", HOSTILE, 3)
    assert text.plain == f"warning: {SHOWN}3"
    assert [(s.start, s.end, str(s.style)) for s in text.spans] == [(0, 8, "yellow")]


def test_log_lines_are_escaped() -> None:
    # The logger's name, not its level: the CLI renames the WARNING level for its own output, and CLI tests
    # in this process may have run that setup before this test.
    formatter = EscapingFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("lut", logging.WARNING, __file__, 1, "device %s is slow", (HOSTILE,), None)
    assert formatter.format(record) == f"lut: device {SHOWN} is slow"
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        record = logging.LogRecord("lut", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = formatter.format(record).split("\n")
    assert lines[0] == "lut: failed" and lines[-1] == f"ValueError: {SHOWN}"


# -- stores: import, list, export, predict, compare -----------------------------------------------------------------
def test_import_under_a_hostile_name(tmp_path: Path) -> None:
    _need_note10()
    res = _cli("lut", "import", NOTE10_160, "--db", tmp_path / "lut.db", "--device", HOSTILE)
    assert "imported 96 rows" in res.stderr and _shows_hostile(res.stderr)


def test_verbose_log_lines_are_escaped(tmp_path: Path) -> None:
    # The store logs the new setting's name (INFO, shown with -v) through the CLI's log handler.
    _need_note10()
    args = ["-v", "lut", "import", str(NOTE10_160), "--db", str(tmp_path / "lut.db"), "--device", HOSTILE]
    run = subprocess.run([sys.executable, "-m", "lutnas", *args], capture_output=True, text=True,
                         env={**os.environ, **WIDE}, timeout=120)
    assert run.returncode == 0, run.stderr
    logged = [line for line in run.stderr.splitlines() if "new device setting" in line]
    assert len(logged) == 1 and _shows_hostile(logged[0]), run.stderr
    assert not any(char in run.stderr for char in RAW)


def test_import_and_list_show_the_name_literally(store: Path) -> None:
    listing = _cli("lut", "list", "--db", store)
    assert _shows_hostile(listing.stderr)
    doc = json.loads(_cli("lut", "list", "--db", store, "--json").stdout)  # JSON keeps the name as it is
    assert [d["device"] for d in doc["devices"]] == [HOSTILE, "twin"]


def test_forced_terminal_gets_no_hyperlink_title_or_clear(store: Path) -> None:
    # A real process on a colour terminal: styles are the only escapes; no OSC (title, hyperlink), no BEL or clear.
    env = {**os.environ, **WIDE, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    run = subprocess.run([sys.executable, "-m", "lutnas", "lut", "list", "--db", str(store)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "\x1b[" in run.stderr  # the terminal is styled
    for bad in ("\x1b]", "\x07", "\x1b[2J", "\u202e"):
        assert bad not in run.stderr + run.stdout
    assert "\\x1b]0;pwn\\x07" in run.stderr and "[link=file:///etc/passwd]evil[/link]" in run.stderr


def test_import_of_a_file_quoting_a_hostile_key(store: Path, tmp_path: Path) -> None:
    csv = tmp_path / "lut.csv"
    csv.write_text(f"block_key,median_ms\n{HOSTILE},0.5\n")
    res = _cli("lut", "import", csv, "--db", tmp_path / "new.db", "--device", "d", code=2)
    assert res.stderr.startswith("error:") and "\\x1b[2J" in res.stderr and "[/x]" in res.stderr


def test_export_and_reimport(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "hostile.csv"
    res = _cli("lut", "export", "--db", store, "--device", HOSTILE, "--out", out)
    assert _shows_hostile(res.stderr) and out.is_file()
    res = _cli("lut", "import", out, "--db", tmp_path / "again.db", "--device", HOSTILE + "-again")
    assert "[/x]" in res.stderr and "-again" in res.stderr


def test_unknown_device_error_quotes_the_names(store: Path) -> None:
    res = _cli("lut", "export", "--db", store, "--device", HOSTILE + "?", "--out", "x.csv", code=2)
    assert res.stderr.startswith("error: unknown device")


def test_predict(store: Path) -> None:
    res = _cli("lut", "predict", "--db", store, "--device", HOSTILE, "--arch", ARCH)
    assert _shows_hostile(res.stderr) and "ms, raw LUT sum" in res.stderr


def test_compare(store: Path) -> None:
    res = _cli("compare", "--db", store, "--device", HOSTILE, "--device", "twin", "--subnets", "20",
               "--resolutions", "160")
    assert _shows_hostile(res.stderr) and "latency dominated by" in res.stderr


# -- agents: a real agent named by its operator, and one that says hostile things everywhere ----------------------
@pytest.fixture(scope="module")
def named_agent() -> Iterator[AgentProcess]:
    with start_agent_process(token=None, extra_args=["--name", HOSTILE]) as agent:
        yield agent


def _onnx(path: Path, fits: bool) -> Path:
    """A Reshape+Relu model whose node names hold ``HOSTILE``; when it does not ``fit``, the Reshape fails at run
    time and onnxruntime's error quotes the node's name."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([4, 4] if fits else [7, 5], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"], name=HOSTILE),
         helper.make_node("Relu", ["r"], ["y"], name=HOSTILE + " relu")],
        "hostile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_devices_shows_the_agents_name(named_agent: AgentProcess) -> None:
    res = _cli("devices", named_agent.address)
    assert _shows_hostile(res.stderr)


def test_time_names_the_device_and_quotes_the_op(named_agent: AgentProcess, tmp_path: Path) -> None:
    good = _onnx(tmp_path / "good.onnx", fits=True)
    res = _cli("time", good, "--agent", named_agent.address)
    assert "using the agent's name" in res.stderr and _shows_hostile(res.stderr) and "median ms" in res.stderr
    res = _cli("time", good, "--agent", f"other={named_agent.address}")
    assert "calls itself" in res.stderr and _shows_hostile(res.stderr)
    bad = _onnx(tmp_path / "bad.onnx", fits=False)
    res = _cli("time", bad, "--agent", f"pi={named_agent.address}", code=2)  # INVALID_ARGUMENT: bad input
    error = res.stderr[res.stderr.index("error:"):]  # after the note that the agent calls itself otherwise
    assert "Reshape node" in error and _shows_hostile(error)
    assert len(error.strip().splitlines()) == 1


class _HostileServicer(agent_pb2_grpc.AgentServicer):
    """An agent that fills every text it reports with ``HOSTILE``."""

    def GetDeviceInfo(self, request, context):  # noqa: N802 - the service's name
        state = agent_pb2.DeviceState(cpus=[agent_pb2.CpuState(cpu=0, governor=HOSTILE)],
                                      thermal=[agent_pb2.ThermalZone(zone=HOSTILE, type=HOSTILE, temp_c=40.0)])
        return agent_pb2.DeviceInfo(
            name=HOSTILE, hostname=HOSTILE, agent_version=HOSTILE, os=HOSTILE, machine=HOSTILE, board=HOSTILE,
            cpu_model=HOSTILE, cpu_cores=1, ram_mb=1, properties={"int8_dot_product": HOSTILE, "timing_cpus": "0"},
            runtimes=[agent_pb2.RuntimeInfo(name=HOSTILE, available=True, version=HOSTILE)],
            accelerators=[agent_pb2.Accelerator(name=HOSTILE, kind=HOSTILE)], state=state)


@pytest.fixture(scope="module")
def hostile_agent() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    agent_pb2_grpc.add_AgentServicer_to_server(_HostileServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_devices_of_an_agent_that_says_hostile_things(hostile_agent: str) -> None:
    res = _cli("devices", hostile_agent)
    # name, arch, board, CPU, int8 dot, OS, governor, runtime name and version, accelerator, agent version
    assert _one_line(res.stderr).count(_one_line(SHOWN)) >= 10
    listed = _cli("devices", hostile_agent, "127.0.0.1:1", "--connect-timeout-s", "0.2", code=1)
    assert "error:" in listed.stderr and _shows_hostile(listed.stderr)
