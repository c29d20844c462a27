"""Gene layouts for every space family: OFA's ResNet50 subnets as integer rows, beside :class:`space.Genome`.

:class:`space.Genome` covers the kernel/expand-slot spaces (MobileNetV3, ProxylessNAS and users' own of that
shape). A ResNet subnet has other genes (stem skip and extra depths ``d``, expand per block ``e``, width
indices ``w``), so :class:`ResNetGenome` lays them out in one row and offers the same operators, and
:class:`ResNetBatch` is its population (a sequence of :class:`space.ResNetSubnet`, which the block-sum
LUT prices). :func:`genome_for` and :func:`as_batch` pick the right one for a space.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from space import Genome, ResNetSpace, ResNetSubnet, SearchSpace, SubnetBatch, get_space

__all__ = ["ResNetBatch", "ResNetGenome", "as_batch", "expand_indices", "genome_for"]


@dataclass(frozen=True)
class ResNetBatch:
    """``n`` ResNet subnets: ``d`` (n, 1 + n_stages), ``e`` (n, n_slots) expand ratios, ``w`` (n, 2 + n_stages)
    width indices and ``r`` (n,)."""

    d: np.ndarray
    e: np.ndarray
    w: np.ndarray
    r: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.r)
        if len(self.d) != n or len(self.e) != n or len(self.w) != n:
            raise ValueError(f"ResNetBatch arrays disagree: d {self.d.shape}, e {self.e.shape}, w {self.w.shape}, "
                             f"r {self.r.shape}")

    def __len__(self) -> int:
        return len(self.r)

    def __getitem__(self, i: int) -> ResNetSubnet:
        return ResNetSubnet(d=tuple(int(x) for x in self.d[i]), e=tuple(float(x) for x in self.e[i]),
                            w=tuple(int(x) for x in self.w[i]), r=int(self.r[i]))

    def __iter__(self) -> Iterator[ResNetSubnet]:
        return (self[i] for i in range(len(self)))

    def take(self, index: np.ndarray | list[int]) -> ResNetBatch:
        """The sub-population at ``index`` (an index array or boolean mask)."""
        return ResNetBatch(self.d[index], self.e[index], self.w[index], self.r[index])

    def to_subnets(self) -> list[ResNetSubnet]:
        return list(self)

    @classmethod
    def from_subnets(cls, subnets: Sequence[ResNetSubnet]) -> ResNetBatch:
        """Stack subnets (already validated) into arrays."""
        if not subnets:
            raise ValueError("ResNetBatch.from_subnets needs at least one subnet")
        return cls(d=np.array([s.d for s in subnets], dtype=np.int64), e=np.array([s.e for s in subnets]),
                   w=np.array([s.w for s in subnets], dtype=np.int64), r=np.array([s.r for s in subnets], dtype=np.int64))

    @classmethod
    def concat(cls, batches: list[ResNetBatch]) -> ResNetBatch:
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("d", "e", "w", "r")))


def expand_indices(space: ResNetSpace, e: np.ndarray) -> np.ndarray:
    """Positions of expand ratios ``e`` among ``space.expand_choices`` (ValueError naming a value that is none)."""
    choices = np.asarray(space.expand_choices, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    idx = np.abs(e[..., None] - choices).argmin(axis=-1)
    bad = ~np.isclose(choices[idx], e)
    if bad.any():
        raise ValueError(f"e values {sorted(set(e[bad].tolist()))} are not among the choices "
                         f"{list(space.expand_choices)} in {space.name}")
    return idx


class ResNetGenome:
    """A ResNet space's subnets as rows of one integer matrix: ``d``, expand indices, width indices, ``r``.

    Mutation resamples each gene with the given probability and crossover takes each gene from either parent,
    as OFA's EvolutionFinder does for ResNet50; the stem-skip gene ``d[0]`` takes only its two meaningful
    values (kept or skipped), as OFA samples it.

    Args:
        space: the ResNet space.
        resolutions: the resolutions sampling and mutation draw from (default: the space's).
    """

    def __init__(self, space: ResNetSpace, resolutions: Sequence[int] | None = None) -> None:
        self.space = space
        self.resolution_choices = np.asarray(space.resolutions if resolutions is None else resolutions, dtype=np.int64)
        if self.resolution_choices.size == 0:
            raise ValueError("resolutions must not be empty")
        n_d, n_e, n_w = 1 + space.n_stages, space.n_slots, 2 + space.n_stages
        self.d = slice(0, n_d)
        self.e = slice(n_d, n_d + n_e)
        self.w = slice(n_d + n_e, n_d + n_e + n_w)
        self.r = n_d + n_e + n_w
        self.width = self.r + 1
        depth = np.asarray(space.depth_choices, dtype=np.int64)
        stem = np.asarray(sorted({min(space.depth_choices), space.max_depth}), dtype=np.int64)
        columns = [stem] + [depth] * space.n_stages + [np.arange(len(space.expand_choices))] * n_e
        columns += [np.arange(len(space.width_choices))] * n_w + [self.resolution_choices]
        self._n_choices = np.array([c.size for c in columns], dtype=np.int64)
        self._table = np.zeros((self.width, int(self._n_choices.max())), dtype=np.int64)
        for col, choices in enumerate(columns):
            self._table[col, :choices.size] = choices
        self._smallest = np.array([c.min() for c in columns], dtype=np.int64)

    def to_batch(self, genes: np.ndarray) -> ResNetBatch:
        """The rows as a ResNetBatch."""
        e = np.asarray(self.space.expand_choices, dtype=np.float64)[np.maximum(genes[:, self.e], 0)]
        return ResNetBatch(genes[:, self.d], e, genes[:, self.w], genes[:, self.r])

    def from_batch(self, batch: ResNetBatch) -> np.ndarray:
        """A ResNetBatch as gene rows (n, width), int64."""
        return np.concatenate([np.asarray(batch.d), expand_indices(self.space, batch.e), np.asarray(batch.w),
                               np.asarray(batch.r)[:, None]], axis=1).astype(np.int64, copy=False)

    def _draw(self, shape: tuple[int, ...], cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pick = (rng.random(shape) * self._n_choices[cols]).astype(np.int64)
        return self._table[cols, pick]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows with every gene drawn uniformly from its choices."""
        cols = np.broadcast_to(np.arange(self.width), (n, self.width))
        return self._draw((n, self.width), cols, rng)

    def mutate(self, genes: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
        """Each gene resampled with probability ``prob``."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutation prob must be in [0, 1], got {prob}")
        hit = rng.random(genes.shape) < prob
        rows, cols = np.nonzero(hit)
        out = genes.copy()
        out[rows, cols] = self._draw((len(cols),), cols, rng)
        return out

    crossover = staticmethod(Genome.crossover)

    def shrink(self, genes: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
        """Each gene set to its smallest choice with probability ``prob`` (leans sampling toward cheap subnets)."""
        return np.where(rng.random(genes.shape) < prob, self._smallest[None, :], genes)

    def active(self, genes: np.ndarray) -> np.ndarray:
        """(n, n_slots) bool: which block slots run."""
        return self.space.active_mask(genes[:, self.d])

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """The rows with the expand genes of blocks that do not run set to -1 (equal rows: the same network)."""
        out = genes.copy()
        e = out[:, self.e]
        e[~self.active(genes)] = -1
        out[:, self.e] = e
        return out


def genome_for(space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int] | None = None) -> Any:
    """The gene layout of ``space``'s family: :class:`space.Genome` or :class:`ResNetGenome`."""
    space = get_space(space)
    if isinstance(space, ResNetSpace):
        return ResNetGenome(space, resolutions)
    return Genome(space, resolutions)


def as_batch(subnets: Any, space: SearchSpace | ResNetSpace | str) -> SubnetBatch | ResNetBatch:
    """A population of ``space``: a batch passes through, arch dicts or subnets are validated and stacked."""
    if isinstance(subnets, (SubnetBatch, ResNetBatch)):
        return subnets
    space = get_space(space)
    subs = [space.validate(a) for a in subnets]
    if isinstance(space, ResNetSpace):
        return ResNetBatch.from_subnets(subs)
    return SubnetBatch.from_subnets(subs)

