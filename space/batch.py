"""Populations of subnets as integer arrays; :class:`Genome` holds the vectorized sampling, mutation and crossover.

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

__all__ = ["Genome", "SubnetBatch", "choice_index"]


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


def choice_index(choices: tuple[int, ...] | list[int] | np.ndarray) -> np.ndarray:
    """Array mapping a gene value to its position among ``choices``, -1 for values that are no choice.

    Choices are positive, so entry 0 and one extra last entry are -1: ``index.take(values,
    mode="clip")`` maps every out-of-range value to -1 too.
    """
    values = [int(v) for v in choices]
    if min(values) < 1:
        raise ValueError(f"gene choices must be positive, got {sorted(values)}")
    index = np.full(max(values) + 2, -1, dtype=np.int64)
    index[values] = np.arange(len(values))
    return index


def _resolution_choices(space: SearchSpace, resolutions: tuple[int, ...] | list[int] | None) -> np.ndarray:
    choices = np.asarray(space.resolutions if resolutions is None else resolutions, dtype=np.int64)
    if choices.size == 0:
        raise ValueError("resolutions must not be empty")
    return choices


class Genome:
    """A space's subnets as rows of one integer matrix, and the evolutionary operators on them.

    A row holds ``ks`` per slot, ``e`` per slot, ``d`` per stage, then ``r`` (OFA's genes). The
    search keeps its population in this form: one array to index, copy and mix instead of
    four. :meth:`to_batch` gives a :class:`SubnetBatch` of views for LUTs and predictors.

    Args:
        space: the search space.
        resolutions: the resolutions sampling and mutation draw from (default: the space's).
    """

    def __init__(self, space: SearchSpace, resolutions: tuple[int, ...] | list[int] | None = None) -> None:
        self.space = space
        self.resolution_choices = _resolution_choices(space, resolutions)
        n_slots, n_stages = space.n_slots, space.n_stages
        self.width = 2 * n_slots + n_stages + 1
        self.ks = slice(0, n_slots)
        self.e = slice(n_slots, 2 * n_slots)
        self.d = slice(2 * n_slots, 2 * n_slots + n_stages)
        self.r = 2 * n_slots + n_stages
        self._choices = [np.asarray(space.ks_choices, dtype=np.int64), np.asarray(space.expand_choices, dtype=np.int64),
                         np.asarray(space.depth_choices, dtype=np.int64), self.resolution_choices]
        # OFA's mutation flips one coin per slot for its kernel and expand ratio together,
        # one per stage depth and one for the resolution.
        self.n_coins = n_slots + n_stages + 1
        slot_cols = np.stack([np.arange(n_slots), n_slots + np.arange(n_slots)], axis=1)
        other_cols = np.stack([2 * n_slots + np.arange(n_stages + 1), np.full(n_stages + 1, -1)], axis=1)
        self._coin_cols = np.concatenate([slot_cols, other_cols])  # (n_coins, 2) gene columns, -1: none
        # Per gene column: how many choices, and the choices padded into one table.
        per_kind = [n_slots, n_slots, n_stages, 1]
        self._n_choices = np.repeat([c.size for c in self._choices], per_kind)
        self._choice_table = np.zeros((self.width, int(self._n_choices.max())), dtype=np.int64)
        col = 0
        for choices, count in zip(self._choices, per_kind):
            self._choice_table[col:col + count, :choices.size] = choices
            col += count

    def to_batch(self, genes: np.ndarray) -> SubnetBatch:
        """The rows as a SubnetBatch (views into ``genes``, no copy)."""
        return SubnetBatch(genes[:, self.ks], genes[:, self.e], genes[:, self.d], genes[:, self.r])

    def from_batch(self, batch: SubnetBatch) -> np.ndarray:
        """A SubnetBatch as gene rows (n, width), int64."""
        return np.concatenate([np.asarray(batch.ks), np.asarray(batch.e), np.asarray(batch.d),
                               np.asarray(batch.r)[:, None]], axis=1).astype(np.int64, copy=False)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows with every gene drawn uniformly from its choices."""
        ks_c, e_c, d_c, r_c = self._choices
        n_slots, n_stages = self.space.n_slots, self.space.n_stages
        out = np.empty((n, self.width), dtype=np.int64)
        out[:, self.ks] = ks_c[rng.integers(0, ks_c.size, (n, n_slots))]
        out[:, self.e] = e_c[rng.integers(0, e_c.size, (n, n_slots))]
        out[:, self.d] = d_c[rng.integers(0, d_c.size, (n, n_stages))]
        out[:, self.r] = r_c[rng.integers(0, r_c.size, n)]
        return out

    def mutate(self, genes: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
        """Each slot's (kernel, expand), each depth and the resolution resampled with probability ``prob``."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutation prob must be in [0, 1], got {prob}")
        n = len(genes)
        hits = np.flatnonzero(rng.random((n, self.n_coins)) < prob)
        row, coin = np.divmod(hits, self.n_coins)
        # A slot coin resamples two genes (kernel and expand); the others one. Fresh values
        # are drawn only for those (~10% of the genes at OFA's rate).
        cols = self._coin_cols[coin].ravel()
        keep = cols >= 0
        cols = cols[keep]
        flat = np.repeat(row * self.width, 2)[keep] + cols
        pick = (rng.random(len(cols)) * self._n_choices[cols]).astype(np.int64)
        out = genes.copy()
        out.reshape(-1)[flat] = self._choice_table[cols, pick]
        return out

    @staticmethod
    def crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        if a.shape != b.shape:
            raise ValueError(f"crossover needs equal-sized parents, got {a.shape} and {b.shape}")
        # One random bit per gene (random bytes unpacked), and b + bit * (a - b) rather than
        # np.where: a random mask makes np.where's branches mispredict half the time (~3x slower).
        bits = np.unpackbits(np.frombuffer(rng.bytes(a.size // 8 + 1), dtype=np.uint8), count=a.size)
        out = a - b
        out *= bits.reshape(a.shape)
        out += b
        return out

    def active(self, genes: np.ndarray) -> np.ndarray:
        """(n, n_slots) bool: which slots run (a slot's position in its stage is below the stage's depth)."""
        return self.space.active_mask(genes[:, self.d])

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """The rows with kernel and expand of slots beyond each stage's depth set to 0 (canonical form).

        Two subnets with equal canonical rows are the same network (those slots are ignored).
        """
        active = self.active(genes)
        out = genes.copy()
        out[:, self.ks] *= active
        out[:, self.e] *= active
        return out

