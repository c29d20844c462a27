"""Files a user is handed are data: hostile pickles are refused, never run; bad numbers stop at the edge."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lutnas.cli import app
from search.predictor import PREDICTOR_KIND
from tests.conftest import SHARED_DATA

from ._hostile import hostile_torch_file, payload_is_live

runner = CliRunner()
NOTE10 = sorted((SHARED_DATA / "ofa" / "note10").glob("*_lookup_table.yaml")) if SHARED_DATA else []
ARCH = '{"ks": [3], "e": [3], "d": [2], "r": 160}'


@pytest.fixture(scope="module")
def two_device_db(tmp_path_factory):
    if not NOTE10:
        pytest.skip("OFA's note10 LUT (shared data) not found")
    db = tmp_path_factory.mktemp("lut") / "lut.db"
    for name in ("note10", "twin"):
        res = runner.invoke(app, ["lut", "import", *map(str, NOTE10), "--db", str(db), "--device", name, "--json"])
        assert res.exit_code == 0, res.output
    return db


def _refused(res, marker) -> None:
    assert res.exit_code == 2, res.output
    assert "never unpickles" in res.output and "Traceback" not in res.output
    assert not marker.exists(), "the hostile pickle ran"


def test_payload_is_live(tmp_path) -> None:
    assert payload_is_live(tmp_path / "ran")


@pytest.mark.parametrize("command", ["search", "compare", "predictor-eval"])
def test_hostile_predictor_is_refused(command, two_device_db, tmp_path) -> None:
    marker = tmp_path / "ran"
    pred = hostile_torch_file(tmp_path / "pred.pt", marker, {"kind": PREDICTOR_KIND, "format_version": 1})
    args = {
        "search": ["search", "--db", str(two_device_db), "--device", "note10", "--latency-ms", "25",
                   "--predictor", str(pred)],
        "compare": ["compare", "--db", str(two_device_db), "--devices", "note10", "twin", "--subnets", "2",
                    "--predictor", str(pred)],
        "predictor-eval": ["predictor", "eval", "--predictor", str(pred), "--data", *map(str, sorted((SHARED_DATA / "dynast").glob("*linasga*.csv")))],
    }[command]
    _refused(runner.invoke(app, args), marker)


@pytest.mark.parametrize("command", ["extract", "eval"])
def test_hostile_checkpoint_is_refused(command, tmp_path) -> None:
    marker = tmp_path / "ran"
    ckpt = hostile_torch_file(tmp_path / "supernet.pt", marker, {"kind": "lutnas-supernet", "format_version": 1})
    args = ["supernet", command, "--checkpoint", str(ckpt), "--arch", ARCH]
    if command == "extract":
        args += ["--out", str(tmp_path / "sub.pt")]
    _refused(runner.invoke(app, args), marker)


def test_overflowing_resolution_is_bad_input(two_device_db) -> None:
    arch = '{"ks": [3], "e": [3], "d": [2], "r": 1e309}'
    res = runner.invoke(app, ["lut", "predict", "--db", str(two_device_db), "--device", "note10", "--arch", arch])
    assert res.exit_code == 2 and "subnet r must be an int" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("flag,value", [("--latency-ms", "nan"), ("--latency-ms", "inf"), ("--max-macs", "nan")])
def test_non_finite_limits_are_bad_input(two_device_db, flag, value) -> None:
    args = ["search", "--db", str(two_device_db), "--device", "note10", "--latency-ms", "25",
            "--predictor", str(SHARED_DATA / "ofa" / "acc_predictor.pth")]
    if flag == "--latency-ms":
        args[args.index("25")] = value
    else:
        args += [flag, value]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "finite number" in res.output, res.output
