"""Ctrl-C during a real ``lutnas profile``: exit 130, say what remains, and let ``lut list`` show the gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.testing import start_agent_process
from lut import LutStore
from lut.errors import StoreError
from space import get_space

from .conftest import invoke, invoke_json

_LUTNAS = [sys.executable, "-c", "from lutnas.cli import main; main()"]
_REPO = Path(__file__).resolve().parents[2]


STEM = {b.key for b in get_space("ofa-mbv3-w1.0").stem_blocks(160)[0]}


def _begun(db: Path) -> bool:
    """Two rows stored, one of them a stem block (what makes lut list count a resolution as begun)."""
    if not db.exists():
        return False
    try:
        with LutStore(db) as store:
            keys = {k for s in store.settings() for k in store.keys(s.id)}
    except StoreError:  # the profile has created the file but not yet its tables
        return False
    return len(keys) >= 2 and bool(keys & STEM)


@pytest.mark.timeout(240)
def test_interrupted_profile_exits_130_and_lists_partial_coverage(tmp_path: Path) -> None:
    db = tmp_path / "lut.db"
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    with start_agent_process(token=None, extra_args=["--name", "box"]) as agent:
        # A bare address files the rows under the name the agent reports (agent serve --name).
        proc = subprocess.Popen([*_LUTNAS, "profile", "--agent", agent.address, "--space", "ofa-mbv3-w1.0",
                                 "--resolutions", "160", "--db", str(db), "--cache-dir", str(tmp_path / "cache"),
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 180
            while not _begun(db):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no rows stored in time"
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    doc = json.loads(out)
    (dev,) = doc["devices"]
    assert doc["interrupted"] is True and dev["device"] == "box" and dev["total"] == 96
    assert dev["remaining"] == 96 - dev["timed"] - dev["failed"] > 0
    text = " ".join(err.split())
    assert f"interrupted: not timed yet: box: {dev['remaining']} of 96 blocks" in text
    assert "Run the same command again to time the rest" in text
    (listed,) = invoke_json("lut", "list", "--db", db)["devices"]
    assert listed["device"] == "box" and listed["runtime"] == "onnxruntime" and listed["threads"] == 1
    assert listed["resolutions"] == {}
    assert listed["coverage"] == [{"space": "ofa-mbv3-w1.0", "resolution": 160, "blocks": listed["rows"], "of": 96,
                                   "complete": False}]
    human = invoke("lut", "list", "--db", db)
    assert f"160: {listed['rows']} of 96" in human.stderr


# Ctrl-C while the main thread holds the stop event's lock (as inside Event.set or Event.wait): the handler runs on
# that thread, so one that set the event itself would wait forever for a lock its own thread holds.
_CTRL_C_IN_EVENT_LOCK = """
import os, signal, time
from lutnas._calls import ctrl_c_stops
with ctrl_c_stops() as stop:
    with stop._cond:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
    print("set" if stop.wait(10) else "not set", flush=True)
print("restored" if signal.getsignal(signal.SIGINT) is signal.default_int_handler else "not restored")
"""


def test_ctrl_c_stops_even_when_it_lands_inside_the_stop_events_lock() -> None:
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    try:
        done = subprocess.run([sys.executable, "-c", _CTRL_C_IN_EVENT_LOCK], capture_output=True, text=True,
                              env=env, timeout=30)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"Ctrl-C inside the event's lock hung the process: {err.stderr!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["set", "restored"]
    assert done.stderr.count("stopping: finishing in-flight jobs; rerun to resume") == 1
