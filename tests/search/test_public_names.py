"""``from search import ...`` reaches every family's gene layout and encodings, and every listed name resolves."""

from __future__ import annotations

import importlib

import pytest

import search


@pytest.mark.parametrize("module", ["search.genomes", "search.encoding"])
def test_every_public_name_of_the_family_modules_is_re_exported(module: str) -> None:
    names = importlib.import_module(module).__all__
    assert set(names) <= set(search.__all__), sorted(set(names) - set(search.__all__))
    for name in names:
        assert getattr(search, name) is getattr(importlib.import_module(module), name)


def test_every_family_has_its_genome_through_search() -> None:
    from search import Genome, ResNetGenome, genome_for

    assert isinstance(genome_for("ofa-mbv3-w1.2"), Genome)
    assert isinstance(genome_for("ofa-proxyless-w1.3"), Genome)
    assert isinstance(genome_for("ofa-resnet50"), ResNetGenome)


def test_every_listed_name_resolves() -> None:
    for name in search.__all__:
        assert getattr(search, name) is not None, name
