"""``lutnas search`` sweeps: an unreachable budget is a row, and each budget's answer is its own."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_DATA

from .conftest import invoke, invoke_json, one_line

OFA_WEIGHTS = (SHARED_DATA or Path("/nonexistent")) / "ofa" / "acc_predictor.pth"


def _search(db: Path, budgets: str, *more: str):
    return ("search", "--db", db, "--device", "note10", "--predictor", OFA_WEIGHTS, "--generations", "10",
            "--population", "40", "--seed", "3", "--latency-ms", budgets, *more)


def test_infeasible_budget_is_a_row_and_the_others_stay(db: Path) -> None:
    doc = invoke_json(*_search(db, "25,5,300"))
    assert set(doc) == {"space", "devices", "latency_model", "accuracy_model", "seed", "few_shot", "results",
                        "extrapolation"}
    low, mid, high = doc["results"]
    assert low["feasible"] is False and low["limits"] == {"note10": 5.0}
    lo, hi = low["achievable_ms"]["note10"]
    assert 9.5 < lo < 10.5 and 90 < hi < 95  # the Note10 LUT's range at r=160..224
    assert "no subnet meets latency on note10 <= 5 ms" in low["reason"]
    assert mid["feasible"] is True and mid["latency_ms"]["note10"] <= 25
    human = invoke(*_search(db, "5,25"))
    assert human.exit_code == 0 and "infeasible:" in human.stderr
    assert "note10 <= 5 ms: no subnet meets latency on note10 <= 5 ms: achievable range" in one_line(human.stderr)


def test_a_budget_every_subnet_meets_is_the_best_subnet(db: Path) -> None:
    """300 ms is above Note10's slowest subnet: the answer is the best subnet, priced on the device."""
    (high,) = invoke_json(*_search(db, "300"))["results"]
    assert high["feasible"] is True and high["limits"] == {"note10": 300.0}
    assert 50 < high["latency_ms"]["note10"] <= 93  # priced, though the budget constrained nothing
    (tight,) = invoke_json(*_search(db, "25"))["results"]
    assert high["predicted_accuracy"] > tight["predicted_accuracy"]


def test_every_budget_infeasible_is_still_one_answer(db: Path) -> None:
    """Under --json there is always one document: budgets no subnet meets are answers, exit 0."""
    result = invoke(*_search(db, "3,5"), "--json")
    assert result.exit_code == 0, result.output
    rows = __import__("json").loads(result.stdout)["results"]
    assert [r["feasible"] for r in rows] == [False, False]
    assert "no subnet meets latency on note10 <= 3 ms" in rows[0]["reason"]
    human = invoke(*_search(db, "3"))
    assert human.exit_code == 0 and human.stdout == "" and "infeasible" in human.stderr


def test_a_budget_gives_the_same_answer_alone_and_in_any_sweep(db: Path) -> None:
    alone = invoke_json(*_search(db, "22"))["results"][0]
    for sweep in ("15,22", "22,30,18"):
        rows = invoke_json(*_search(db, sweep))["results"]
        (same,) = [r for r in rows if r["limits"]["note10"] == 22.0]
        assert same["arch"] == alone["arch"] and same["predicted_accuracy"] == alone["predicted_accuracy"]
