"""Regenerate the Python modules for ``protos/agent.proto``.

Run from anywhere: ``python protos/generate.py [--out DIR]``. The proto is compiled with the
repository root as the include path, so the generated gRPC module imports
``from protos import agent_pb2`` and works as part of the ``protos`` package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["PROTO_FILES", "REPO_ROOT", "generate"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_FILES = ("protos/agent.proto",)


def generate(out_dir: Path = REPO_ROOT) -> list[Path]:
    """Compile every file in ``PROTO_FILES`` into ``out_dir``.

    Args:
        out_dir: Root to write into; files land under ``out_dir/protos/``.

    Returns:
        The paths written.

    Raises:
        RuntimeError: protoc reported an error.
    """
    from grpc_tools import protoc  # build-time tool only; the agent never needs it

    out_dir = Path(out_dir)
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    # protoc resolves the proto paths against the include directory, so run from the repository root.
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        code = protoc.main(args)
    finally:
        os.chdir(cwd)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} for {', '.join(PROTO_FILES)}")
    written = []
    for proto in PROTO_FILES:
        stem = Path(proto).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            written.append(out_dir / f"{stem}{suffix}")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root directory to write protos/*_pb2*.py into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
