"""Cross-device regret at matched budgets: the library on synthetic LUTs, ``lutnas compare --predictor`` on reference LUTs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from lut import CompiledLut
from lutnas.cli import app
from search import EvolutionSettings, RegretReport, cross_device_regret
from space import get_space

from .conftest import SyntheticAccuracy

SPACE = "ofa-mbv3-w1.2"
RESOLUTIONS = (160, 192, 224)
FAST = EvolutionSettings(population_size=40, generations=15)


def _synthetic_table(stage1_factor: float = 1.0) -> dict[str, float]:
    """``{block_key: ms}`` for every block of the space at RESOLUTIONS, roughly proportional to
    the depthwise/pointwise work; mbconv blocks of stage 1 are ``stage1_factor`` times slower."""
    space = get_space(SPACE)
    table: dict[str, float] = {}
    for r in RESOLUTIONS:
        for block in space.unique_blocks(r):
            work = block.out_hw ** 2 * (block.mid_chs or block.out_chs) * (block.kernel ** 2 + block.in_chs // 4 + 1)
            ms = 0.02 + 2e-6 * work
            if block.kind == "mbconv" and block.out_chs == space.stage_chs[0]:
                ms *= stage1_factor
            table[block.key] = ms
    return table


@pytest.fixture(scope="module")
def luts() -> dict[str, CompiledLut]:
    a = CompiledLut.from_table(_synthetic_table(), SPACE, device="a")
    b = CompiledLut.from_table(_synthetic_table(stage1_factor=5.0), SPACE, device="b")
    assert a.resolutions == RESOLUTIONS == b.resolutions
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def report(luts) -> RegretReport:
    return cross_device_regret(SPACE, luts, SyntheticAccuracy(), quantiles=(0.2, 0.6), settings=FAST,
                               random_state=0)


def test_b_is_a_with_a_slower_stage1(luts):
    lo_a, hi_a = luts["a"].value_range()
    lo_b, hi_b = luts["b"].value_range()
    assert lo_b > lo_a and hi_b > hi_a


def test_picks_meet_matched_budgets(report, luts):
    assert report.devices == ("a", "b") and report.resolutions == RESOLUTIONS and report.generations == 15
    assert [q.quantile for q in report.by_quantile] == [0.2, 0.6]
    for qr in report.by_quantile:
        for device, pick in qr.picks.items():
            lo, hi = luts[device].value_range(RESOLUTIONS)
            assert pick.range_ms == pytest.approx((lo, hi))
            assert pick.budget_ms == pytest.approx(lo + qr.quantile * (hi - lo))
            assert pick.latency_ms <= pick.budget_ms
            assert pick.latency_ms == pytest.approx(luts[device].predict(pick.arch))
            assert pick.arch["r"] in RESOLUTIONS
            assert pick.found_by in report.devices and pick.searched_accuracy <= pick.predicted_accuracy
    # A larger budget never gives a worse pick on the same device by much (searches are short).
    for device in report.devices:
        accs = [qr.picks[device].predicted_accuracy for qr in report.by_quantile]
        assert accs[1] > accs[0] - 1.0


def test_cross_prices_and_regret(report, luts):
    for qr in report.by_quantile:
        assert len(qr.cross) == 4
        for a in report.devices:
            diag = qr.price(a, a)
            assert diag.feasible and diag.regret == 0.0 and diag.over_budget_ms == 0.0
            for b in report.devices:
                c = qr.price(a, b)
                assert c.budget_ms == qr.picks[b].budget_ms
                assert c.latency_ms == pytest.approx(luts[b].predict(qr.picks[a].arch))  # A's pick priced on B
                if c.latency_ms <= c.budget_ms:
                    assert c.feasible and c.over_budget_ms == 0.0
                    assert c.regret == pytest.approx(qr.picks[b].predicted_accuracy - qr.picks[a].predicted_accuracy)
                    assert c.regret >= 0  # B's pick is the best subnet known under B's budget
                else:
                    assert not c.feasible and c.regret is None
                    assert c.over_budget_ms == pytest.approx(c.latency_ms - c.budget_ms)
                    assert c.over_budget_pct == pytest.approx(100 * c.over_budget_ms / c.budget_ms)
    off = [c for qr in report.by_quantile for c in qr.cross if c.source != c.target]
    assert any(c.feasible for c in off) and any(not c.feasible for c in off)  # both cases are exercised
    with pytest.raises(KeyError, match="no pair"):
        report.by_quantile[0].price("a", "c")


def test_json_shape(report):
    doc = json.loads(json.dumps(report.to_dict()))
    assert set(doc) == {"devices", "space", "resolutions", "generations", "quantiles", "by_quantile"}
    assert doc["quantiles"] == [0.2, 0.6] and doc["space"] == SPACE
    entry = doc["by_quantile"][0]
    assert set(entry) == {"quantile", "picks", "cross"} and set(entry["picks"]) == {"a", "b"}
    assert set(entry["picks"]["a"]) == {"device", "budget_ms", "range_ms", "arch", "predicted_accuracy",
                                        "latency_ms", "search_seconds", "found_by", "searched_accuracy"}
    assert set(entry["cross"][0]) == {"source", "target", "latency_ms", "budget_ms", "feasible", "over_budget_ms",
                                      "over_budget_pct", "regret"}


def test_seeded_and_restricted(luts):
    settings = dataclasses.replace(FAST, generations=3, resolutions=(192, 224, 256))
    one = cross_device_regret(SPACE, luts, SyntheticAccuracy(), (0.5,), settings, random_state=7)
    two = cross_device_regret(SPACE, luts, SyntheticAccuracy(), (0.5,), settings, random_state=7)
    assert one.resolutions == (192, 224)
    assert one.to_dict()["by_quantile"][0]["cross"] == two.to_dict()["by_quantile"][0]["cross"]
    # The predictor's resolutions narrow the shared set too.
    narrow = cross_device_regret(SPACE, luts, SyntheticAccuracy(resolutions=(160, 176, 224)), (0.5,),
                                 dataclasses.replace(FAST, generations=2), random_state=0)
    assert narrow.resolutions == (160, 224)


def test_identical_devices_share_the_best_known_pick(luts):
    twins = {"a": luts["a"], "a2": CompiledLut.from_table(_synthetic_table(), SPACE, device="a2")}
    settings = dataclasses.replace(FAST, generations=2)
    report = cross_device_regret(SPACE, twins, SyntheticAccuracy(), (0.3, 0.5), settings, random_state=3)
    for qr in report.by_quantile:
        a, a2 = qr.picks["a"], qr.picks["a2"]
        assert a.budget_ms == pytest.approx(a2.budget_ms)
        assert a.predicted_accuracy == a2.predicted_accuracy == max(a.searched_accuracy, a2.searched_accuracy)
        assert all(c.feasible and c.regret == 0.0 for c in qr.cross)
        for p in (a, a2):
            assert (p.found_by != p.device) == (p.searched_accuracy < p.predicted_accuracy)


@pytest.mark.parametrize("kwargs, match", [
    ({"quantiles": (0.0, 0.5)}, "quantiles should lie in"),
    ({"quantiles": (1.0,)}, "quantiles should lie in"),
    ({"quantiles": ()}, "at least one"),
])
def test_bad_quantiles(luts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cross_device_regret(SPACE, luts, SyntheticAccuracy(), settings=FAST, **kwargs)


def test_needs_two_devices(luts):
    with pytest.raises(ValueError, match="two or more devices"):
        cross_device_regret(SPACE, {"a": luts["a"]}, SyntheticAccuracy(), settings=FAST)


# -- the command line on the reference LUTs ---------------------------------------------------------
runner = CliRunner()


@pytest.fixture(scope="module")
def ref_paths(request):
    data = request.getfixturevalue("shared_data")
    note10 = sorted((data / "ofa" / "note10").glob("*_lookup_table.yaml"))
    i7 = data / "nsganetv2" / "i7-8700K_lut.yaml"
    weights = data / "ofa" / "acc_predictor.pth"
    if not note10 or not i7.is_file() or not weights.is_file():
        pytest.skip(f"Note10 / i7 LUTs or OFA's predictor not found under {data}")
    return note10, i7, weights


@pytest.fixture(scope="module")
def two_device_db(ref_paths, tmp_path_factory):
    note10, i7, _ = ref_paths
    db = tmp_path_factory.mktemp("regret") / "lut.db"
    for device, files in (("note10", note10), ("i7", [i7])):
        res = runner.invoke(app, ["lut", "import", *map(str, files), "--db", str(db), "--device", device, "--json"])
        assert res.exit_code == 0, res.output
    return db


def test_compare_predictor_json(two_device_db, ref_paths):
    weights = ref_paths[2]
    res = runner.invoke(app, ["compare", "--db", str(two_device_db), "--devices", "note10", "i7", "--subnets", "200",
                              "--predictor", str(weights), "--generations", "20", "--budgets", "0.3,0.6", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["devices"] == ["note10", "i7"] and "pairs" in doc  # the plain comparison is still there
    regret = doc["regret"]
    assert regret["resolutions"] == [160, 176, 192, 208, 224]  # note10's; i7 and the predictor hold more
    assert regret["quantiles"] == [0.3, 0.6] and regret["generations"] == 20
    for entry in regret["by_quantile"]:
        picks = entry["picks"]
        for pick in picks.values():
            lo, hi = pick["range_ms"]
            assert pick["budget_ms"] == pytest.approx(lo + entry["quantile"] * (hi - lo))
            assert pick["latency_ms"] <= pick["budget_ms"] and 70 < pick["predicted_accuracy"] < 90
        for c in entry["cross"]:
            if c["source"] == c["target"]:
                assert c["regret"] == 0.0 and c["feasible"]
            elif c["feasible"]:
                assert c["regret"] >= 0 and c["regret"] == pytest.approx(picks[c["target"]]["predicted_accuracy"]
                                                    - picks[c["source"]]["predicted_accuracy"])
            else:
                assert c["regret"] is None and c["over_budget_ms"] > 0
    # The pick for note10 priced on i7 matches the i7 pick's own LUT scale (i7 is ~2x faster here).
    first = regret["by_quantile"][0]["cross"]
    on_i7 = next(c for c in first if c["source"] == "note10" and c["target"] == "i7")
    assert 0 < on_i7["latency_ms"] < regret["by_quantile"][0]["picks"]["note10"]["latency_ms"]


def test_compare_predictor_human_and_usage(two_device_db, ref_paths):
    weights = ref_paths[2]
    base = ["compare", "--db", str(two_device_db), "--devices", "note10", "i7", "--subnets", "100"]
    human = runner.invoke(app, [*base, "--predictor", str(weights), "--generations", "2", "--budgets", "0.5"])
    assert human.exit_code == 0, human.output
    assert "regret at quantile 0.5" in human.output and "best subnet per device" in human.output
    for extra, message in ((["--budgets", "0.5"], "go with --predictor"),
                           (["--generations", "3"], "go with --predictor"),
                           (["--predictor", str(weights), "--budgets", "0.5,1"], "strictly between 0 and 1"),
                           (["--predictor", str(weights), "--budgets", "x"], "expects quantiles"),
                           (["--predictor", str(two_device_db.parent / "none.pt")], "not found")):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and message in res.output, (extra, res.output)
    # Resolutions no LUT shares with the predictor: a one-line failure.
    res = runner.invoke(app, [*base, "--predictor", str(weights), "--generations", "2", "--resolution", "256"])
    assert res.exit_code in (1, 2) and "Traceback" not in res.output


def test_compare_predictor_exit_codes_tell_bad_input_from_a_failed_search(two_device_db, ref_paths, monkeypatch):
    """--generations -1 is bad usage (2); an error raised inside the regret searches is a failed run (1)."""
    import search.evolution

    weights = ref_paths[2]
    base = ["compare", "--db", str(two_device_db), "--devices", "note10", "i7", "--subnets", "100",
            "--predictor", str(weights), "--budgets", "0.5"]
    bad = runner.invoke(app, [*base, "--generations", "-1"])
    assert bad.exit_code == 2 and "generations" in bad.output

    def broken_breed(*args, **kwargs):
        raise ValueError("children lost their genes")

    monkeypatch.setattr(search.evolution, "_breed", broken_breed)
    failed = runner.invoke(app, [*base, "--generations", "2"])
    assert failed.exit_code == 1, failed.output
    assert "regret search failed: ValueError: children lost their genes" in " ".join(failed.output.split())
    assert not isinstance(failed.exception, ValueError)
