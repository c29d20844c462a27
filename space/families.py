"""OFA's ProxylessNAS and ResNet50 families: their fixed sizes, and reading their arch dicts the supernets' way.

The sizes are OFA's (mit-han-lab/once-for-all, MIT): ``elastic_nn/networks/ofa_proxyless.py`` for
ProxylessNAS, ``networks/resnets.py`` (``ResNets.BASE_DEPTH_LIST``, ``STAGE_WIDTH_LIST``) and
``elastic_nn/networks/ofa_resnets.py`` for ResNet50. They are defined once, in the built-in space files
(``space/data/ofa-proxyless-w1.3.json``, ``ofa-resnet50.json``); the constants here are read from those
spaces. ``../shared/data/ofa/golden/*_shapes.json`` lists the state_dict they give; the golden tests check
these constants against it.

Arch dicts (OFA's forms; an int or float applies to every slot, ``r`` may be an int or a one-element list):

- ProxylessNAS ``{"ks": [21], "e": [21], "d": [6], "r": int}``: one kernel and expand ratio per block slot
  (five stages of ``max(depth_list)`` slots, then a one-slot stage), one depth per stage. The last stage
  always runs its one block: OFA clips its depth, so any allowed depth (or 1) is accepted there.
- ResNet50 ``{"d": [5], "e": [18], "w": [6], "r": int}``: ``d[0]`` skips the input stem's middle conv unless
  it is ``max(depth_list)``, ``d[1:]`` are the blocks each stage runs beyond its base depth; one expand ratio
  per block; ``w`` are indices into ``width_mult_list`` for the stem's first conv, its last conv and the
  four stages.

These readers are the supernets' (``set_active_subnet`` takes partial archs and OFA's keyword form);
``SearchSpace.validate`` and ``ResNetSpace.validate`` read whole archs for the rest of lutnas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from space.choices import matching_choice
from space.registry import get_space
from space.resnet_space import ResNetSpace
from space.search_space import SearchSpace, stage_depth_choices

__all__ = [
    "PROXYLESS_ACT",
    "PROXYLESS_BASE_WIDTHS",
    "PROXYLESS_BN_EPS",
    "PROXYLESS_STAGE_STRIDES",
    "RESNET_BASE_DEPTHS",
    "RESNET_BN_EPS",
    "RESNET_STAGE_STRIDES",
    "RESNET_STAGE_WIDTHS",
    "RESNET_STEM_WIDTH",
    "ProxylessArch",
    "ProxylessChoices",
    "ResNetArch",
    "ResNetChoices",
    "bottleneck_mid_chs",
    "parse_proxyless_arch",
    "parse_resnet_arch",
]

_PROXYLESS: SearchSpace = get_space("ofa-proxyless-w1.3")  # type: ignore[assignment]
_RESNET: ResNetSpace = get_space("ofa-resnet50")  # type: ignore[assignment]
# ProxylessNAS: widths at width_mult 1.0 (stem, fixed first block, six stages, feature mix); OFA's w1.3 supernet
# rounds each times 1.3 to a multiple of 8.
PROXYLESS_BASE_WIDTHS = _PROXYLESS.base_widths
PROXYLESS_STAGE_STRIDES = _PROXYLESS.stage_strides  # first block of each stage
PROXYLESS_ACT = _PROXYLESS.stem_act  # every conv layer but the projections; no squeeze-excite anywhere
PROXYLESS_BN_EPS = 1e-3  # OFA's bn_param for ProxylessNAS (MobileNetV3 and ResNet50 use 1e-5)

# ResNet50 (OFA's ResNet50-D form: a three-conv input stem, avg-pool downsampling).
RESNET_STEM_WIDTH = _RESNET.stem_chs  # input stem output; its first two convs have half
RESNET_STAGE_WIDTHS = _RESNET.stage_chs  # block outputs per stage
RESNET_BASE_DEPTHS = _RESNET.base_depths  # blocks per stage at depth 0 (+ up to max(depth_list))
RESNET_STAGE_STRIDES = _RESNET.stage_strides
RESNET_BN_EPS = 1e-5


#: Middle width of a ResNet bottleneck with ``out_chs`` outputs at ``expand_ratio`` (OFA's rounding), the
#: space's own rule: ``bottleneck_mid_chs(out_chs, expand_ratio)``.
bottleneck_mid_chs = ResNetSpace.mid_chs


@dataclass(frozen=True)
class ProxylessChoices:
    """The values a ProxylessNAS supernet allows."""

    ks: tuple[int, ...]  # kernel sizes
    e: tuple[float, ...]  # expand ratios
    d: tuple[int, ...]  # stage depths
    stage_slots: tuple[int, ...]  # block slots per stage (the last stage has one)

    @property
    def n_slots(self) -> int:
        """Block slots over all stages."""
        return sum(self.stage_slots)

    def active_slots(self, depths: Sequence[int]) -> list[int]:
        """Slot indices that run at these (already clipped) stage depths."""
        starts = [sum(self.stage_slots[:s]) for s in range(len(self.stage_slots))]
        return [start + j for start, depth in zip(starts, depths) for j in range(depth)]


@dataclass(frozen=True)
class ProxylessArch:
    """A parsed ProxylessNAS arch; ``None`` fields were not given, ``None`` slots keep their setting (they do not
    run and held no valid value). ``d`` is clipped to each stage's slots."""

    ks: tuple[int, ...] | None
    e: tuple[float, ...] | None
    d: tuple[int, ...] | None
    r: int | None


@dataclass(frozen=True)
class ResNetChoices:
    """The values a ResNet50 supernet allows."""

    d: tuple[int, ...]  # extra blocks per stage (and the stem-skip choice)
    e: tuple[float, ...]  # expand ratios
    n_widths: int  # len(width_mult_list): w values are indices below it
    n_blocks: int  # block slots over all stages


@dataclass(frozen=True)
class ResNetArch:
    """A parsed ResNet50 arch; ``None`` fields were not given."""

    d: tuple[int, ...] | None
    e: tuple[float, ...] | None
    w: tuple[int, ...] | None
    r: int | None


def parse_proxyless_arch(
    choices: ProxylessChoices, arch: Mapping[str, Any] | None = None, **fields: Any
) -> ProxylessArch:
    """Read a ProxylessNAS arch dict and/or keyword fields (``ks``, ``e``, ``d``, ``r``), checked against ``choices``.

    Keyword fields override the dict's. Kernel and expand values are checked only in slots that run (all slots
    when no depth is given).

    Raises:
        ValueError: An unknown key, a field of the wrong length or type, or a value ``choices`` does not allow.
    """
    values = _merge(arch, fields, ("ks", "e", "d", "r"))
    n_stages = len(choices.stage_slots)
    depths = None
    if values.get("d") is not None:
        depths = []
        for s, (v, slots) in enumerate(zip(_broadcast("d", values["d"], n_stages), choices.stage_slots)):
            depths.append(min(int(_pick("d", s, v, stage_depth_choices(choices.d, slots))), slots))
    active = choices.active_slots(depths) if depths is not None else range(choices.n_slots)
    ks = _slot_values("ks", values.get("ks"), choices.n_slots, choices.ks, active)
    e = _slot_values("e", values.get("e"), choices.n_slots, choices.e, active)
    return ProxylessArch(ks=ks, e=e, d=tuple(depths) if depths is not None else None, r=_resolution(values.get("r")))


def parse_resnet_arch(choices: ResNetChoices, arch: Mapping[str, Any] | None = None, **fields: Any) -> ResNetArch:
    """Read a ResNet50 arch dict and/or keyword fields (``d``, ``e``, ``w``, ``r``), checked against ``choices``.

    Keyword fields override the dict's. All 18 expand ratios are checked (a block beyond its stage's depth
    keeps its setting for the next subnet that runs it, so it must be valid too).

    Raises:
        ValueError: An unknown key, a field of the wrong length or type, or a value ``choices`` does not allow.
    """
    values = _merge(arch, fields, ("d", "e", "w", "r"))
    n_stages = len(RESNET_BASE_DEPTHS)
    d = _slot_values("d", values.get("d"), 1 + n_stages, choices.d, range(1 + n_stages))  # stem skip, stages
    e = _slot_values("e", values.get("e"), choices.n_blocks, choices.e, range(choices.n_blocks))
    w = _slot_values("w", values.get("w"), 2 + n_stages, tuple(range(choices.n_widths)), range(2 + n_stages))
    return ResNetArch(
        d=tuple(int(v) for v in d) if d is not None else None,
        e=e,
        w=tuple(int(v) for v in w) if w is not None else None,
        r=_resolution(values.get("r")),
    )


def _merge(arch: Mapping[str, Any] | None, fields: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    if arch is not None and not isinstance(arch, Mapping):
        raise ValueError(f"arch must be a dict with keys {', '.join(known)}, got {type(arch).__name__}")
    merged = dict(arch or {})
    merged.pop("wid", None)  # DyNAS-T writes one; it means nothing here
    merged.update({k: v for k, v in fields.items() if v is not None})
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ValueError(f"arch keys must be among {', '.join(known)}, got {', '.join(map(repr, unknown))}")
    return merged


def _broadcast(field: str, value: Any, n: int) -> list[Any]:
    if _is_number(value):
        return [value] * n
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != n:
            raise ValueError(f"arch {field} must have {n} values, got {len(value)}")
        return list(value)
    raise ValueError(f"arch {field} must be a number or a list of {n} numbers, got {value!r}")


def _pick(field: str, index: int, value: Any, allowed: Sequence[float]) -> float:
    """The allowed value equal to ``value`` (floats compared with a tolerance, so 0.35 read from text matches)."""
    choice = matching_choice(value, allowed)
    if choice is not None:
        return choice
    raise ValueError(f"arch {field}[{index}] must be one of {list(allowed)}, got {value!r}")


def _slot_values(
    field: str, value: Any, n: int, allowed: Sequence[float], active: Sequence[int] | range
) -> tuple[Any, ...] | None:
    if value is None:
        return None
    values = _broadcast(field, value, n)
    checked = set(active)
    out: list[Any] = []
    for i, v in enumerate(values):
        if i in checked:
            out.append(_pick(field, i, v, allowed))
        else:  # a slot that does not run: keep a valid value, else leave the layer's setting alone (None)
            try:
                out.append(_pick(field, i, v, allowed))
            except ValueError:
                out.append(None)
    return tuple(out)


def _resolution(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 1:
        value = value[0]
    if not _is_number(value) or int(value) != value or value <= 0:
        raise ValueError(f"arch r must be a positive int, got {value!r}")
    return int(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
