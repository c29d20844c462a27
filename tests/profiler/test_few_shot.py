"""Few-shot profiles end to end: real agents on loopback, a real store with OFA's Note10 and the i7 tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.testing import SLEEP_RUNTIME_SPEC, start_agent_process
from lut import DeviceSetting, LutStore
from lut.transfer import PREDICTED_SOURCE, fill_from_sources, load_sources, measured_keys, predicted_rows
from lutnas.cli import app
from profiler.fleet import AgentRef, plan_blocks, profile
from tests.lut.conftest import ref_db  # noqa: F401 - the session fixture this module's stores copy
from tests.profiler.test_fleet import TOKEN, _settings, sleep_exporter

ARCH = json.dumps({"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5, "r": 160})


@pytest.fixture()
def db(ref_db: Path, tmp_path: Path) -> Path:  # noqa: F811 - the fixture above, by name
    path = tmp_path / "lut.db"
    shutil.copy(ref_db, path)
    return path


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_few_shot_profile_times_k_blocks_and_marks_the_rest(db: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    common = ["--space", "ofa-mbv3-w1.2", "--resolutions", "160", "--runtime", "onnxruntime", "--sentinel-every", "0",
              "--db", str(db), "--token-file", str(token_file), "--json"]
    with start_agent_process(token=TOKEN, extra_args=["--cpus", "all"]) as agent:
        # A fully profiled source beside an imported table: from i7 and Note10 alone this host's blocks gave
        # cross-validated errors of 29-64% from run to run, around the 50% refusal limit.
        code, _, err = _run(["profile", "--agent", f"host={agent.address}", *common])
        assert code == 0, err
        code, out, err = _run(["profile", "--agent", f"pi={agent.address}", *common,
                               "--few-shot", "20", "--from", "host,i7"])
    assert code == 0, err
    dev = json.loads(out)["devices"][0]
    assert (dev["timed"], dev["measured"], dev["predicted"]) == (20, 20, 76)
    assert dev["few_shot"]["predicted"] == 76 and len(dev["few_shot"]["sources"]) == 2
    assert dev["few_shot"]["cv_error_pct"] > 0
    with LutStore(db) as store:
        rows = store.rows("pi")
        assert (rows["source"] == PREDICTED_SOURCE).sum() == 76
        assert set(rows.loc[rows["source"] == "measured", "n"]) != {0}
    # every reader says the rows are predicted, with the error to expect
    code, out, _ = _run(["lut", "list", "--db", str(db), "--json"])
    pi = next(d for d in json.loads(out)["devices"] if d["device"] == "pi")
    assert pi["predicted_rows"] == 76 and pi["expected_error_pct"] == dev["few_shot"]["cv_error_pct"]
    code, out, err = _run(["lut", "predict", "--db", str(db), "--device", "pi", "--arch", ARCH, "--json"])
    assert code == 0, err
    assert json.loads(out)["few_shot"]["predicted_rows"] == 76
    assert "76 of 96 rows are predicted" in err
    # a CSV export carries the marking into another store
    code, _, err = _run(["lut", "export", "--db", str(db), "--device", "pi", "--out", str(tmp_path / "pi.csv")])
    assert code == 0 and "76 of 96 rows are predicted" in err
    code, _, err = _run(["lut", "import", "--db", str(tmp_path / "copy.db"), "--device", "pi", str(tmp_path / "pi.csv")])
    assert code == 0, err
    code, out, _ = _run(["lut", "list", "--db", str(tmp_path / "copy.db"), "--json"])
    copied = json.loads(out)["devices"][0]
    assert (copied["predicted_rows"], copied["expected_error_pct"]) == (76, dev["few_shot"]["cv_error_pct"])
    code, out, err = _run(["compare", "--db", str(db), "--device", "pi", "--device", "note10", "--resolutions", "160",
                           "--subnets", "50", "--json"])
    assert code == 0, err
    assert [note["device"] for note in json.loads(out)["few_shot"]] == ["pi"]


def test_plain_profile_measures_the_predicted_rows(db: Path) -> None:
    with start_agent_process(token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--cpus", "all"]) as agent:
        with LutStore(db) as store:
            agents = [AgentRef("board", agent.address)]
            keys = [b.key for b in plan_blocks("ofa-mbv3-w1.0", (128,))]
            first = profile(store, agents, _settings(only_keys=tuple(keys[::16])), token=TOKEN,
                            export_fn=sleep_exporter())
            sid = first.devices[0].setting_id
            assert first.devices[0].timed == len(keys[::16])
            sources = load_sources(store, ["i7"])
            result = fill_from_sources(store, sid, sources, "ofa-mbv3-w1.0", (128,), max_cv_error=10.0)
            assert len(result.predicted_ms) == len(keys) - len(keys[::16])
            status = predicted_rows(store, sid)
            assert status is not None and status.predicted == len(result.predicted_ms)
            assert status.sources == tuple(sources)
            again = profile(store, agents, _settings(), token=TOKEN, export_fn=sleep_exporter())
            assert again.devices[0].timed == len(result.predicted_ms)  # the measured blocks are not timed again
            assert predicted_rows(store, sid) is None
            assert measured_keys(store, sid) == set(keys)


def test_useless_fit_stores_nothing_predicted(db: Path) -> None:
    with LutStore(db) as store:
        sid = store.ensure_setting(DeviceSetting("odd", "onnxruntime"))
        keys = [b.key for b in plan_blocks("ofa-mbv3-w1.2", (160,))]
        noise = [0.3, 9.0, 0.05, 4.0, 0.7, 12.0, 0.2, 2.5]
        store.put_rows(sid, [(k, {"median_ms": v}, None) for k, v in zip(keys[::12], noise)])
        with pytest.raises(ValueError, match="do not predict this setting"):
            fill_from_sources(store, sid, load_sources(store, ["i7"]), "ofa-mbv3-w1.2", (160,))
        assert predicted_rows(store, sid) is None and len(store.rows(sid)) == len(noise)


@pytest.mark.parametrize("args, message", [
    (["--few-shot", "6"], "--few-shot K and --from"),
    (["--few-shot", "6", "--from", "nosuch"], "nosuch"),
    (["--few-shot", "500", "--from", "i7"], "between 4 and the number of blocks (96"),
    (["--few-shot", "6", "--from", "note10", "--resolutions", "128,160"], "source '#1 note10"),
    (["--few-shot", "6", "--from", "i7,i7"], "twice"),
])
def test_bad_few_shot_input_is_one_line_and_exit_2(db: Path, args: list[str], message: str) -> None:
    base = ["profile", "--agent", "pi=127.0.0.1:9", "--space", "ofa-mbv3-w1.2", "--db", str(db)]
    if "--resolutions" not in args:
        base += ["--resolutions", "160"]
    code, out, err = _run(base + args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
