"""Populations of subnets as integer arrays, with vectorized sampling, mutation and crossover.

The evolutionary search handles 100k+ subnets per second, so a population is four arrays
instead of a list of dicts. Genes follow OFA's EvolutionFinder: kernel and expand per slot,
depth per stage, and the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from space.subnet import Subnet

if TYPE_CHECKING:
    from space.search_space import SearchSpace

__all__ = ["SubnetBatch", "sample", "mutate", "crossover"]


@dataclass(frozen=True)
class SubnetBatch:
    """``n`` subnets: ``ks`` and ``e`` (n, n_slots), ``d`` (n, n_stages), ``r`` (n,), all int64."""

    ks: np.ndarray
    e: np.ndarray
    d: np.ndarray
    r: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.r)
        if self.ks.shape != self.e.shape or self.ks.ndim != 2 or len(self.ks) != n or len(self.d) != n:
            raise ValueError(
                f"SubnetBatch arrays disagree: ks {self.ks.shape}, e {self.e.shape}, d {self.d.shape}, r {self.r.shape}"
            )

    def __len__(self) -> int:
        return len(self.r)

    def __getitem__(self, i: int) -> Subnet:
        return Subnet(ks=tuple(int(x) for x in self.ks[i]), e=tuple(int(x) for x in self.e[i]),
                      d=tuple(int(x) for x in self.d[i]), r=int(self.r[i]))

    def take(self, index: np.ndarray | list[int]) -> SubnetBatch:
        """The sub-population at ``index`` (an index array or boolean mask)."""
        return SubnetBatch(self.ks[index], self.e[index], self.d[index], self.r[index])

    def to_subnets(self) -> list[Subnet]:
        return [self[i] for i in range(len(self))]

    @classmethod
    def from_subnets(cls, subnets: list[Subnet]) -> SubnetBatch:
        """Stack subnets (already parsed/validated) into arrays."""
        if not subnets:
            raise ValueError("SubnetBatch.from_subnets needs at least one subnet")
        return cls(
            ks=np.array([s.ks for s in subnets], dtype=np.int64),
            e=np.array([s.e for s in subnets], dtype=np.int64),
            d=np.array([s.d for s in subnets], dtype=np.int64),
            r=np.array([s.r for s in subnets], dtype=np.int64),
        )

    @classmethod
    def concat(cls, batches: list[SubnetBatch]) -> SubnetBatch:
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("ks", "e", "d", "r")))


def _resolution_choices(space: SearchSpace, resolutions: tuple[int, ...] | list[int] | None) -> np.ndarray:
    choices = np.asarray(space.resolutions if resolutions is None else resolutions, dtype=np.int64)
    if choices.size == 0:
        raise ValueError("resolutions must not be empty")
    return choices


def sample(space: SearchSpace, n: int, rng: np.random.Generator,
           resolutions: tuple[int, ...] | list[int] | None = None) -> SubnetBatch:
    """``n`` subnets with every gene drawn uniformly from its choices."""
    ks_c = np.asarray(space.ks_choices, dtype=np.int64)
    e_c = np.asarray(space.expand_choices, dtype=np.int64)
    d_c = np.asarray(space.depth_choices, dtype=np.int64)
    r_c = _resolution_choices(space, resolutions)
    return SubnetBatch(
        ks=ks_c[rng.integers(0, ks_c.size, (n, space.n_slots))],
        e=e_c[rng.integers(0, e_c.size, (n, space.n_slots))],
        d=d_c[rng.integers(0, d_c.size, (n, space.n_stages))],
        r=r_c[rng.integers(0, r_c.size, n)],
    )


def mutate(space: SearchSpace, batch: SubnetBatch, prob: float, rng: np.random.Generator,
           resolutions: tuple[int, ...] | list[int] | None = None) -> SubnetBatch:
    """Each gene independently replaced by a fresh uniform draw with probability ``prob``."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mutation prob must be in [0, 1], got {prob}")
    fresh = sample(space, len(batch), rng, resolutions)
    out = []
    for name in ("ks", "e", "d", "r"):
        old, new = getattr(batch, name), getattr(fresh, name)
        out.append(np.where(rng.random(old.shape) < prob, new, old))
    return SubnetBatch(*out)


def crossover(a: SubnetBatch, b: SubnetBatch, rng: np.random.Generator) -> SubnetBatch:
    """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
    if len(a) != len(b):
        raise ValueError(f"crossover needs equal-sized parents, got {len(a)} and {len(b)}")
    out = []
    for name in ("ks", "e", "d", "r"):
        x, y = getattr(a, name), getattr(b, name)
        out.append(np.where(rng.random(x.shape) < 0.5, x, y))
    return SubnetBatch(*out)
