"""Encoding, genome, predictor and search for every space family (ProxylessNAS and ResNet50 beside MobileNetV3),
each searched end to end through the CLI on a synthetic LUT of its family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lut import DeviceSetting, LutStore
from lut.predict import CompiledLut
from lutnas.cli import app
from search.encoding import get_encoding
from search.errors import SpaceMismatchError
from search.evolution import EvolutionSettings, evolutionary_search, latency_constraint, macs_constraint
from search.genomes import ResNetBatch, as_batch, genome_for
from search.predictor import LutnasPredictor
from space import get_space
from space.counts import block_macs

runner = CliRunner()
FAMILIES = ["ofa-proxyless-w1.3", "ofa-resnet50"]
RES = (160, 192)


def _table(space_name: str, resolutions=RES) -> dict[str, float]:
    """A synthetic LUT: each block priced from its multiply-adds (plus a per-block overhead)."""
    space = get_space(space_name)
    return {b.key: 2e-8 * block_macs(b) + 0.02 for b in space.unique_blocks(list(resolutions))}


def _pairs(space_name: str, n: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """Synthetic (arch, accuracy) pairs: accuracy grows with the log of the subnet's LUT latency."""
    space = get_space(space_name)
    lut = CompiledLut.from_table(_table(space_name), space)
    rng = np.random.default_rng(seed)
    genome = genome_for(space, RES)
    batch = genome.to_batch(genome.sample(n, rng))
    acc = 70 + 3 * np.log(lut.predict_batch(batch, calibrated=False)) + rng.normal(0, 0.05, n)
    return [a.to_arch() for a in batch.to_subnets()], acc


@pytest.mark.parametrize("name, widths", [("ofa-mbv3-w1.2", (128, 151)), ("ofa-proxyless-w1.3", (134, 167)),
                                          ("ofa-resnet50", (95, 98))])
def test_encoding_width_is_derived_from_the_space(name, widths):
    space = get_space(name)
    genome = genome_for(space, RES)
    batch = genome.to_batch(genome.sample(16, np.random.default_rng(0)))
    for enc_name, width in zip(("ofa", "lutnas"), widths):
        enc = get_encoding(enc_name, space)
        x = enc(batch)
        assert enc.width == width and x.shape == (16, width) and np.isfinite(x).all()


def test_proxyless_last_stage_reads_as_depth_one():
    space = get_space("ofa-proxyless-w1.3")
    arch = {"ks": [3] * 21, "e": [4] * 21, "d": [2, 3, 4, 2, 3, 1], "r": 160}
    same = {**arch, "d": [2, 3, 4, 2, 3, 4]}  # OFA clips the one-slot stage: the same network
    for enc_name in ("ofa", "lutnas"):
        enc = get_encoding(enc_name, space)
        np.testing.assert_array_equal(enc(as_batch([arch], space)), enc(as_batch([same], space)))
    # The ofa encoding: 2+3+4+2+3+1 = 15 running slots, each with a kernel and an expand one-hot, plus r.
    assert get_encoding("ofa", space)(as_batch([arch], space)).sum() == 2 * 15 + 1


def test_resnet_encoding_one_hots():
    space = get_space("ofa-resnet50")
    arch = {"d": [0, 0, 1, 2, 0], "e": [0.35] * 18, "w": [0, 1, 2, 0, 1, 2], "r": 176}
    x = get_encoding("ofa", space)(as_batch([arch], space))[0]
    # d: 5 one-hots; e: only blocks that run (2 + 3 + 6 + 2 = 13 of 18); w: 6 one-hots; r: one bin.
    assert x.sum() == 5 + 13 + 6 + 1
    assert x[:15].reshape(5, 3).argmax(axis=1).tolist() == [0, 0, 1, 2, 0]
    assert x[15 + 54:15 + 54 + 18].reshape(6, 3).argmax(axis=1).tolist() == [0, 1, 2, 0, 1, 2]
    assert x[-8:].argmax() == (176 - 112) // 16
    with pytest.raises(ValueError, match="not among the choices"):
        get_encoding("ofa", space)(ResNetBatch(np.zeros((1, 5), int), np.full((1, 18), 0.3), np.zeros((1, 6), int),
                                               np.array([160])))


@pytest.mark.parametrize("name", FAMILIES)
def test_genome_operators_keep_subnets_valid(name):
    space = get_space(name)
    genome = genome_for(space, RES)
    rng = np.random.default_rng(1)
    genes = genome.sample(200, rng)
    np.testing.assert_array_equal(genome.from_batch(genome.to_batch(genes)), genes)
    children = genome.crossover(genes, genome.mutate(genes, 0.3, rng), rng)
    for sub in genome.to_batch(children):
        space.validate(sub.to_arch())
    canon = genome.canonical(children)
    blocks = [space.blocks(s) for s in genome.to_batch(children)]
    same = [(i, j) for i in range(50) for j in range(i) if (canon[i] == canon[j]).all()]
    assert all(blocks[i] == blocks[j] for i, j in same)


@pytest.mark.parametrize("name", FAMILIES)
def test_search_meets_latency_and_macs_bounds(name):
    space = get_space(name)
    lut = CompiledLut.from_table(_table(name), space)
    archs, acc = _pairs(name, 150, seed=2)
    pred = LutnasPredictor(space=name).fit(archs, acc)
    lo, hi = lut.value_range(RES)
    budget = lo + 0.3 * (hi - lo)
    macs = macs_constraint(space, 1e12)
    mlo, mhi = macs.model.value_range(RES)
    constraints = [latency_constraint("dev", lut, budget), macs_constraint(space, (mlo + mhi) / 2)]
    result = evolutionary_search(space, constraints, pred, EvolutionSettings(population_size=16, generations=6),
                                 random_state=0)
    space.validate(result.arch)
    assert result.latency_ms["dev"] <= budget
    assert lut.predict(result.arch) == pytest.approx(result.latency_ms["dev"])
    assert result.costs["macs"] <= (mlo + mhi) / 2
    assert result.history[-1] >= result.history[0]


def test_saved_predictor_names_a_space_whose_encoding_does_not_fit(tmp_path):
    archs, acc = _pairs("ofa-resnet50", 40, seed=3)
    path = tmp_path / "p.pt"
    LutnasPredictor(space="ofa-resnet50").fit(archs, acc).save(path)
    loaded = LutnasPredictor.load(path)
    np.testing.assert_allclose(loaded.predict(archs[:5]), LutnasPredictor.load(path, space="ofa-resnet50").predict(archs[:5]))
    with pytest.raises(SpaceMismatchError, match="'ofa-resnet50'"):
        LutnasPredictor.load(path, space="ofa-proxyless-w1.3")
    blob = __import__("torch").load(path, weights_only=True)
    meta = json.loads(blob["metadata_json"])
    params = json.loads(blob["params_json"])
    assert meta["space"] == "ofa-resnet50" and params["encodings"] == ["ofa", "lutnas"]
    params["space"] = meta["space"] = "ofa-proxyless-w1.3"  # a file whose encodings do not fit its space
    blob["params_json"], blob["metadata_json"] = json.dumps(params), json.dumps(meta)
    with pytest.raises(SpaceMismatchError, match="95-float 'ofa' encoding.*134 floats"):
        LutnasPredictor.from_blob(blob, path)


@pytest.mark.parametrize("name", FAMILIES)
def test_cli_search_runs_on_a_lut_of_each_family(name, tmp_path: Path):
    db = tmp_path / "lut.db"
    with LutStore(db) as store:
        store.import_rows(DeviceSetting("board", "onnxruntime"),
                          [(k, {"median_ms": ms}, None) for k, ms in _table(name).items()])
    archs, acc = _pairs(name, 120, seed=4)
    pred_path = tmp_path / "pred.pt"
    LutnasPredictor(space=name).fit(archs, acc).save(pred_path)
    lut = CompiledLut.from_table(_table(name), get_space(name))
    lo, hi = lut.value_range(RES)
    budget = round(lo + 0.4 * (hi - lo), 3)
    res = runner.invoke(app, ["search", "--db", str(db), "--device", "board", "--predictor", str(pred_path),
                              "--space", name, "--latency-ms", str(budget), "--generations", "5",
                              "--population", "16", "--json"])
    assert res.exit_code == 0, res.output
    (doc,) = json.loads(res.stdout)["results"]
    arch = doc["arch"]
    get_space(name).validate(arch)
    assert lut.predict(arch, calibrated=False) <= budget
    assert doc["latency_ms"]["board"] == pytest.approx(lut.predict(arch, calibrated=False))
