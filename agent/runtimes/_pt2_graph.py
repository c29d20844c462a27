"""Static checks of a ``.pt2`` (torch.export) archive's layout and graphs, before torch reads any of it.

``torch.export.load`` does more than read tensors: it resolves every node's target by name among all of
torch (so a graph can call ``aten.from_file``), loads AOTInductor shared objects found under
``data/aotinductor/``, ``exec``s the program's guard code and parses symbolic shape expressions with
``sympy.sympify`` (Python ``eval``). So an archive passes only when it is a plain export: known members of
bounded size, graphs whose every node (higher-order-op bodies included) calls an operator on
:data:`agent.runtimes._pt2_ops.ALLOWED_TARGETS`, no guard code and no symbolic shapes.
No torch here: everything is judged from the zip directory and the graph JSON.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence

from agent.errors import JobError, one_line
from agent.runtimes._pt2_ops import ALLOWED_TARGETS

__all__ = ["MAX_GRAPH_JSON_BYTES", "check_pt2_layout", "check_pt2_program", "is_program_member"]

#: The largest graph JSON member read: torch.export writes well under 1 MB for a whole OFA subnet.
MAX_GRAPH_JSON_BYTES = 64 << 20
# All members together may inflate to this many times the archive (torch.export stores members
# uncompressed, so a plain export is ~1x), plus a floor for tiny archives; a zip bomb is ~1000x.
_MAX_EXPANSION = 16
_EXPANSION_FLOOR_BYTES = 16 << 20

# Members of a plain torch.export archive, relative to its one top folder. Everything else (AOTInductor
# and ExecuTorch payloads, the pre-2.8 layout, stray files) is refused.
_FIXED_MEMBERS = frozenset({"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"})
_DATA_DIRS = ("data/weights/", "data/constants/", "data/sample_inputs/", "extra/")
_PROGRAM_DIR = "models/"


def is_program_member(name: str) -> bool:
    """Whether ``name`` (a full member name) is an exported program's graph JSON."""
    rel = name.partition("/")[2]
    return rel.startswith(_PROGRAM_DIR) and rel.endswith(".json") and "/" not in rel[len(_PROGRAM_DIR):]


def check_pt2_layout(infos: Sequence[zipfile.ZipInfo], archive_bytes: int) -> None:
    """Refuse members a plain export does not have, and sizes past the bounds, from the zip directory alone.

    Raises:
        JobError: INVALID_ARGUMENT naming the member.
    """
    for info in infos:
        rel = info.filename.partition("/")[2]
        if not (rel in _FIXED_MEMBERS or rel.startswith(_DATA_DIRS) or is_program_member(info.filename)):
            raise JobError(
                "INVALID_ARGUMENT", f"pt2 archive: member {info.filename[:100]!r} is not part of a plain torch.export archive"
            )
        if is_program_member(info.filename) and info.file_size > MAX_GRAPH_JSON_BYTES:
            raise JobError(
                "INVALID_ARGUMENT",
                f"pt2 archive: graph {info.filename[:100]!r} inflates to {info.file_size} bytes; limit {MAX_GRAPH_JSON_BYTES}",
            )
    # torch reads members relative to the first one's folder; zip and torch must agree on which member is which.
    roots = {info.filename.partition("/")[0] for info in infos}
    if len(roots) != 1:
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: members must sit in one top folder, got {len(roots)} folders")
    if len({info.filename for info in infos}) != len(infos):
        raise JobError("INVALID_ARGUMENT", "pt2 archive: a member name appears twice")
    total = sum(info.file_size for info in infos)
    limit = _MAX_EXPANSION * archive_bytes + _EXPANSION_FLOOR_BYTES
    if total > limit:
        raise JobError("INVALID_ARGUMENT", f"pt2 archive of {archive_bytes} bytes inflates to {total} bytes; limit {limit}")


def check_pt2_program(member: str, raw: bytes) -> None:
    """Refuse a graph JSON that calls an operator off the allowlist or carries Python source.

    Every dict in the document is looked at, so nodes in higher-order-op bodies (``as_graph`` arguments)
    and operator-valued arguments (``as_operator``) are checked like top-level nodes.

    Raises:
        JobError: INVALID_ARGUMENT naming the operator or what else is refused.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: {member[:100]} is not a graph: {one_line(err, 100)}") from err
    if not isinstance(doc, dict):
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: {member[:100]} is not a graph: a {type(doc).__name__}, not an object")
    if doc.get("guards_code"):
        raise JobError("INVALID_ARGUMENT", "pt2 archive: the program carries guard code (Python source that loading runs); "
                                           "export with static shapes")
    if doc.get("range_constraints"):
        raise _symbolic()
    stack: list[object] = [doc]
    while stack:  # iterative, so a deeply nested document cannot exhaust the stack; in document order
        item = stack.pop()
        if isinstance(item, dict):
            if "expr_str" in item:
                raise _symbolic()
            for key in ("target", "as_operator"):
                if key in item:
                    _check_target(item[key])
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _check_target(target: object) -> None:
    if isinstance(target, str) and target in ALLOWED_TARGETS:
        return
    shown = target.removeprefix("torch.ops.") if isinstance(target, str) else target
    raise JobError(
        "INVALID_ARGUMENT",
        f"pt2 archive: the graph calls {str(shown)[:100]!r}, which is not on the agent's allowlist of pure tensor operators",
    )


def _symbolic() -> JobError:
    return JobError("INVALID_ARGUMENT", "pt2 archive: symbolic shapes are refused (loading parses their expressions as "
                                        "Python); export with static shapes")
