"""One vocabulary across commands: the same flag spelling means the same thing everywhere, old
spellings still parse, and a mistyped device name gets a suggestion."""

from __future__ import annotations

import json
from pathlib import Path

from agent.testing import start_agent_process

from .conftest import invoke, invoke_json, one_line


def test_device_names_suggest_the_close_one(db: Path) -> None:
    result = invoke("lut", "predict", "--db", db, "--device", "Note10", "--arch", "{}")
    assert result.exit_code == 2
    assert "unknown device 'Note10'; known devices: i7, note10; did you mean 'note10'?" in one_line(result.stderr)
    result = invoke("compare", "--db", db, "--device", "note1O", "--device", "i7")
    assert result.exit_code == 2 and "did you mean 'note10'?" in one_line(result.stderr)
    result = invoke("lut", "export", "--db", db, "--device", "zzz", "--out", db.parent / "x.csv")
    assert result.exit_code == 2 and "did you mean" not in result.stderr


def test_compare_takes_repeated_device_and_the_old_devices_list(db: Path) -> None:
    new = invoke_json("compare", "--db", db, "--device", "note10", "--device", "i7", "--subnets", "50",
                      "--resolutions", "224")
    old = invoke_json("compare", "--db", db, "--devices", "note10", "i7", "--subnets", "50",
                      "--resolution", "224")
    assert new["devices"] == old["devices"] == ["note10", "i7"]
    assert new["resolutions"] == old["resolutions"] == [224]


def test_export_format_follows_the_extension(db: Path, tmp_path: Path) -> None:
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "n.csv")
    assert doc["format"] == "csv" and "\nblock_key," in Path(doc["files"][0]).read_text()
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "n.parquet")
    assert doc["format"] == "parquet"
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "yaml")
    assert doc["format"] == "ofa-yaml" and len(doc["files"]) == 6  # 5 resolutions and the setting
    bad = invoke("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "one.yaml")
    assert bad.exit_code == 2 and "give a directory" in bad.stderr


def test_agent_flags_parse_the_same_everywhere() -> None:
    # No agent listens on port 1: each command must get past parsing and fail reaching it (exit 1),
    # whichever spelling is used.
    for args in (["devices", "127.0.0.1:1"], ["devices", "--agent", "x=127.0.0.1:1"],
                 ["devices", "--agent", "127.0.0.1:1", "--timeout-s", "0.2"]):
        result = invoke(*args, "--connect-timeout-s", "0.2")
        assert result.exit_code == 1, result.output
        assert "127.0.0.1:1" in result.stderr
    result = invoke("devices")
    assert result.exit_code == 2 and "--agent" in result.stderr


def test_profile_and_validate_give_up_on_an_unreachable_agent_after_connect_timeout(db: Path) -> None:
    import re
    import time

    from lut import DeviceSetting, LutStore
    from profiler.client import DEFAULT_RETRY_S

    with LutStore(db) as store:  # an onnxruntime device (the reference LUTs name no model format)
        rows = [(k, {"median_ms": v}, {}) for k, v in store.table("note10").items()]
        store.import_rows(DeviceSetting("pc", "onnxruntime", threads=1, model_format="onnx"), rows)
    # Nothing listens on port 1: each command retries for --connect-timeout-s, then stops with one line
    # naming the agent (exit 1, the work failed). The default (10 s) would take ten retries or so.
    for args in (["profile", "--agent", "x=127.0.0.1:1", "--db", db.parent / "new.db", "--resolutions", "160"],
                 ["profile", "--agent", "127.0.0.1:1", "--db", db.parent / "new.db"],
                 ["validate", "--agent", "pc=127.0.0.1:1", "--db", db, "--samples", "3"]):
        started = time.monotonic()
        result = invoke(*args, "--connect-timeout-s", "0.3")
        elapsed = time.monotonic() - started
        assert result.exit_code == 1, result.output
        lines = one_line(result.stderr)
        assert lines.startswith("error:") and "127.0.0.1:1 unreachable" in lines, lines
        attempts = int(re.search(r"after (\d+) attempts?", lines).group(1))
        assert attempts <= 3 and elapsed < DEFAULT_RETRY_S, (attempts, elapsed)
    result = invoke("validate", "--agent", "note10=127.0.0.1:1", "--db", db, "--connect-timeout-s", "0")
    assert result.exit_code == 2 and "--connect-timeout-s must be a finite number > 0" in one_line(result.stderr)


def test_agent_name_and_host_name_differ_note_and_case_twins(db: Path, tmp_path: Path) -> None:
    from agent.testing import onnx_matmul_relu
    from lut import DeviceSetting, LutStore

    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_matmul_relu(8, 8, 8))
    with start_agent_process(token=None, extra_args=["--name", "box", "--runtimes", "onnxruntime"]) as agent:
        addr = agent.address
        # time: the note goes to stderr; stdout stays one JSON document naming the host's NAME.
        result = invoke("time", model, "--agent", f"pc={addr}", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["device"] == "pc"
        assert (f"note: agent at {addr} calls itself 'box'; the result names it 'pc' (--agent NAME wins over the "
                "agent's own name)") in one_line(result.stderr)
        same = invoke("time", model, "--agent", f"box={addr}", "--json")
        assert same.exit_code == 0 and "calls itself" not in same.stderr
        # A bare address: time names the device as profile and validate do, by the agent's own name.
        bare = invoke("time", model, "--agent", addr, "--json")
        assert bare.exit_code == 0, bare.output
        assert json.loads(bare.stdout)["device"] == "box" and f"{addr}: using the agent's name 'box'" in bare.stderr
        table = invoke("time", model, "--agent", addr)
        assert table.exit_code == 0 and "m.onnx on box" in table.stderr and addr not in table.stderr.split("\n", 1)[1]
        # A profile that fails before its first row (the agent lacks the runtime) removes the store it created.
        new = tmp_path / "new.db"
        result = invoke("profile", "--agent", f"box={addr}", "--db", new, "--runtime", "tflite")
        assert result.exit_code == 1 and "has no runtime 'tflite'" in one_line(result.stderr)
        assert not new.exists() and list(tmp_path.glob("new.db*")) == []
        # profile: the note, and a new name that differs from a stored device only in case gets a
        # "did you mean" (a runtime the agent lacks then stops it before any timing).
        result = invoke("profile", "--agent", f"Note10={addr}", "--db", db, "--runtime", "tflite")
        text = one_line(result.stderr)
        assert result.exit_code == 1 and "has no runtime 'tflite'" in text
        assert f"note: agent at {addr} calls itself 'box'; rows are stored under 'Note10'" in text
        assert "note: 'Note10' is a new device; did you mean 'note10'? (device names are case-sensitive)" in text
        # validate: a stored device name's "did you mean" (before the agent is asked anything), then the note
        # (a runtime the agent lacks stops it before any timing).
        result = invoke("validate", "--agent", f"Note10={addr}", "--db", db, "--json")
        text = one_line(result.stderr)
        assert result.exit_code == 2 and result.stdout == "" and "calls itself" not in text
        assert "unknown device 'Note10'" in text and "did you mean 'note10'?" in text
        with LutStore(db) as store:
            rows = [(k, {"median_ms": v}, {}) for k, v in store.table("note10").items()]
            store.import_rows(DeviceSetting("pc", "tflite", threads=1, model_format="tflite"), rows)
        result = invoke("validate", "--agent", f"pc={addr}", "--db", db, "--samples", "3", "--json")
        text = one_line(result.stderr)
        assert result.exit_code == 1 and result.stdout == "" and "has no runtime 'tflite'" in text
        assert f"note: agent at {addr} calls itself 'box'; the LUT of 'pc' is validated" in text


def test_profile_against_a_dead_agent_creates_no_store_and_leaves_one_untouched(db: Path, tmp_path: Path) -> None:
    absent = tmp_path / "absent" / "lut.db"
    absent.parent.mkdir()
    before = db.read_bytes()
    for target in (absent, db):  # nothing listens on port 1
        for agent in ("127.0.0.1:1", "pi=127.0.0.1:1"):
            result = invoke("profile", "--agent", agent, "--db", target, "--connect-timeout-s", "0.2")
            assert result.exit_code == 1, result.output
            assert len(result.stderr.strip().splitlines()) == 1 and "127.0.0.1:1 unreachable" in result.stderr
    assert list(absent.parent.iterdir()) == []
    assert db.read_bytes() == before


def test_profile_resolutions_default_to_the_space(db: Path, tmp_path: Path) -> None:
    import onnxruntime

    from lut import DeviceSetting, LutStore
    from lut.spaces import profile_resolutions
    from space import get_space

    assert profile_resolutions("ofa-mbv3-w1.0") == profile_resolutions("ofa-mbv3-w1.2") == (160, 176, 192, 208, 224)
    assert profile_resolutions("ofa-mbv3-w0.25") == (12, 16)
    help_text = one_line(invoke("profile", "--help").stdout.replace("│", " "))  # rich draws boxes around options
    assert "Default: the space's resolutions; for the ImageNet OFA spaces" in help_text
    # Every digits-space block at 12 and 16 is stored already: without --resolutions the profile plans exactly
    # those blocks and skips them all (160..224 would plan w0.25 blocks nobody stored, and time them).
    blocks = get_space("ofa-mbv3-w0.25").unique_blocks([12, 16])
    with LutStore(db) as store:
        store.import_rows(DeviceSetting("box", "onnxruntime", runtime_version=onnxruntime.__version__, threads=1,
                                        model_format="onnx"), [(b.key, {"median_ms": 0.01}, {}) for b in blocks])
    with start_agent_process(token=None, extra_args=["--name", "box"]) as agent:
        doc = invoke_json("profile", "--agent", agent.address, "--space", "ofa-mbv3-w0.25", "--db", db,
                          "--sentinel-every", "0", "--cache-dir", tmp_path / "cache")
    (device,) = doc["devices"]
    assert device["total"] == device["skipped"] == len(blocks) and device["timed"] == 0
    assert device["round_spread_pct"] is None  # nothing timed in rounds
