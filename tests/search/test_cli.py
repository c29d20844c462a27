"""``lutnas predictor train|eval`` and ``lutnas search`` end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lutnas.cli import app

from .conftest import DYNAST, NOTE10, OFA_WEIGHTS

runner = CliRunner()


@pytest.fixture(scope="module")
def note10_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("lut") / "lut.db"
    res = runner.invoke(app, ["lut", "import", *map(str, NOTE10), "--db", str(db), "--device", "note10", "--json"])
    assert res.exit_code == 0, res.output
    return db


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_predictor_train_and_eval(tmp_path):
    out = tmp_path / "pred.pt"
    train = sorted(map(str, DYNAST.glob("*evoga*.csv")))
    doc = _json(runner.invoke(app, ["predictor", "train", "--data", *train, "--out", str(out), "--json"]))
    assert doc["space"] == "ofa-mbv3-w1.0" and doc["n"] == 362 and out.is_file()
    test = [str(p) for p in DYNAST.glob("*linasga*.csv")]
    metrics = _json(runner.invoke(app, ["predictor", "eval", "--predictor", str(out), "--data", *test, "--json"]))
    assert set(metrics) == {"kendall", "spearman", "rmse", "n"} and metrics["kendall"] > 0.6  # 362 training subnets only; the full split is tested elsewhere
    ofa = _json(runner.invoke(app, ["predictor", "eval", "--ofa-weights", str(OFA_WEIGHTS), "--data", *test, "--json"]))
    assert 0.4 < ofa["kendall"] < 0.95
    same = _json(runner.invoke(app, ["predictor", "eval", "--predictor", str(OFA_WEIGHTS), "--data", *test, "--json"]))
    assert same == ofa
    bad = runner.invoke(app, ["predictor", "eval", "--data", *test])
    assert bad.exit_code == 2


def test_search_json_sweep_and_errors(note10_db, tmp_path):
    base = ["search", "--db", str(note10_db), "--device", "note10", "--predictor", str(OFA_WEIGHTS),
            "--generations", "20", "--seed", "1"]
    (doc,) = _json(runner.invoke(app, [*base, "--latency-ms", "25", "--json"]))["results"]
    assert doc["latency_ms"]["note10"] <= 25 and set(doc["arch"]) == {"ks", "e", "d", "r"}
    plot = tmp_path / "front.png"
    docs = _json(runner.invoke(app, [*base, "--latency-ms", "20,15", "--json", "--plot", str(plot)]))["results"]
    assert [d["limits"]["note10"] for d in docs] == [15.0, 20.0] and plot.stat().st_size > 0
    # A budget no subnet meets is an answer, alone as in a sweep: one JSON document, exit 0.
    res = runner.invoke(app, [*base, "--latency-ms", "3"])
    assert res.exit_code == 0 and "achievable range" in res.output
    (alone,) = _json(runner.invoke(app, [*base, "--latency-ms", "3", "--json"]))["results"]
    assert alone["feasible"] is False and alone["achievable_ms"]["note10"][0] > 3
    res = runner.invoke(app, [*base, "--latency-ms", "25", "--device", "phone"])
    assert res.exit_code == 2
    human = runner.invoke(app, [*base, "--latency-ms", "25"])
    assert human.exit_code == 0 and human.stdout == ""
    (distinct,) = _json(runner.invoke(app, [*base, "--latency-ms", "25", "--distinct-parents", "--json"]))["results"]
    assert distinct["latency_ms"]["note10"] <= 25


def test_search_exit_codes_tell_bad_input_from_a_failed_search(note10_db, tmp_path, monkeypatch):
    """Exit 2 only for what the user gave; an error raised inside the search itself is exit 1 on one line."""
    import search.evolution

    base = ["search", "--db", str(note10_db), "--device", "note10", "--latency-ms", "25", "--seed", "1"]
    bad_settings = runner.invoke(app, [*base, "--predictor", str(OFA_WEIGHTS), "--population", "1"])
    assert bad_settings.exit_code == 2 and "population_size" in bad_settings.output
    not_a_predictor = tmp_path / "pred.pt"
    not_a_predictor.write_bytes(b"not a predictor")
    bad_file = runner.invoke(app, [*base, "--predictor", str(not_a_predictor)])
    assert bad_file.exit_code == 2 and "pred.pt" in bad_file.output

    # A ValueError from deep inside the evolution (no real input reaches one there once the checks passed).
    def broken_breed(*args, **kwargs):
        raise ValueError("children lost their genes")

    monkeypatch.setattr(search.evolution, "_breed", broken_breed)
    failed = runner.invoke(app, [*base, "--predictor", str(OFA_WEIGHTS), "--generations", "2"])
    assert failed.exit_code == 1, failed.output
    assert "search failed: ValueError: children lost their genes" in " ".join(failed.output.split())
    assert "Traceback" not in failed.output and not isinstance(failed.exception, ValueError)
