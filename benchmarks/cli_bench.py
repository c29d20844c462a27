"""Command-line start-up: whole processes, a base commit beside this checkout, in one run.

Times, as whole processes (median of ``--repeats``, base and this checkout interleaved so load drifts
hit both alike):

* ``lutnas --help``;
* ``lutnas search`` on OFA's Note10 LUT (imported into a temporary store) with OFA's accuracy predictor,
  one 25 ms budget, ``--json`` (the search's own ``search_seconds`` is read from its output);
* ``python -c "import lutnas"``;
* ``python -c "import torch"``, the floor a search process cannot go under.

The base is any commit, checked out with ``git worktree add`` into a temporary folder and run with
``PYTHONPATH`` pointing there (the editable install of this checkout stays in place: ``PYTHONPATH`` comes
first). It also lists which heavy libraries each process loads (``-X importtime``).

    python benchmarks/cli_bench.py --base 829ca02 [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data") if not (ROOT.parent / "shared" / "data").is_dir() else ROOT.parent / "shared" / "data"
NOTE10 = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
OFA_WEIGHTS = DATA / "ofa" / "acc_predictor.pth"
HEAVY = ("torch", "pandas", "scipy", "sklearn", "matplotlib", "sqlalchemy", "onnx", "onnxruntime", "grpc")


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "80"}


def _commands(db: Path) -> dict[str, list[str]]:
    py = sys.executable
    search = [py, "-m", "lutnas", "search", "--db", str(db), "--device", "note10", "--latency-ms", "25",
              "--predictor", str(OFA_WEIGHTS), "--json"]
    return {"lutnas --help": [py, "-m", "lutnas", "--help"], "lutnas search": search,
            "import lutnas": [py, "-c", "import lutnas"], "import torch": [py, "-c", "import torch"]}


def _run(cmd: list[str], tree: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {tree}: {done.stderr.strip()[-400:]}")
    return wall, done.stdout


def _loaded(cmd: list[str], tree: Path) -> list[str]:
    """The heavy top-level modules the process imports."""
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], cwd=tree, env=_env(tree), capture_output=True,
                          text=True, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    return [m for m in HEAVY if m in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (e.g. the one before a change)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not NOTE10 or not OFA_WEIGHTS.is_file():
        raise SystemExit(f"needs OFA's Note10 LUT and acc_predictor.pth under {DATA / 'ofa'}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            _bench(Path(tmp), {"base": base, "this": ROOT}, args.repeats, args.base)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)


def _bench(tmp: Path, trees: dict[str, Path], repeats: int, base_ref: str) -> None:
    db = tmp / "note10.db"
    subprocess.run([sys.executable, "-m", "lutnas", "lut", "import", "--db", str(db), "--device", "note10",
                    *map(str, NOTE10)], cwd=ROOT, env=_env(ROOT), check=True, capture_output=True)
    commands = _commands(db)
    walls: dict[tuple[str, str], list[float]] = {}
    searched: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, cmd in commands.items():
            for label, tree in trees.items():
                if name == "import torch" and label == "base":
                    continue  # the same torch either way
                wall, out = _run(cmd, tree)
                walls.setdefault((name, label), []).append(wall)
                if name == "lutnas search":
                    searched.setdefault(label, []).append(json.loads(out)["results"][0]["search_seconds"])
    torch_s = statistics.median(walls["import torch", "this"])
    print(f"median of {repeats} runs, base {base_ref} vs this checkout; load average {os.getloadavg()[0]:.1f}")
    print(f"{'process':<16} {'base (s)':>9} {'this (s)':>9}  heavy modules loaded (base -> this)")
    for name, cmd in commands.items():
        if name == "import torch":
            continue
        b, t = (statistics.median(walls[name, label]) for label in ("base", "this"))
        loads = " -> ".join(",".join(_loaded(cmd, tree)) or "-" for tree in trees.values())
        print(f"{name:<16} {b:>9.2f} {t:>9.2f}  {loads}")
    print(f"{'import torch':<16} {torch_s:>9.2f} {torch_s:>9.2f}")
    for label in trees:
        search_s = statistics.median(searched[label])
        over = statistics.median(walls["lutnas search", label]) - torch_s - search_s
        print(f"lutnas search ({label}): search itself {search_s:.2f} s; process - import torch - search = {over:.2f} s")


if __name__ == "__main__":
    main()
