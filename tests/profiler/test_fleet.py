"""The fleet scheduler against real agent subprocesses on loopback (synthetic sleep runtime and onnxruntime)."""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
from collections import Counter
from pathlib import Path

import pytest

from agent.testing import SLEEP_RUNTIME_SPEC, sleep_model, start_agent_process, wait_until
from lut import CompiledLut, LutStore
from lut.repeatability import stored_round_spread
from profiler.fleet import AgentRef, ProfileError, ProfileSettings, plan_blocks, profile, sentinel_block
from space import Block, get_space

TOKEN = "fleet-test-token"
SPACE = "ofa-mbv3-w1.0"
RES = 128
FAST_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 3, "max_s": 2.0,
             "target_rel_ci": 0.5}


def _latency_ms(block: Block) -> float:
    # A plausible cost model so blocks differ; 1..6 ms.
    return 1.0 + min(5.0, block.mid_chs * block.out_hw * block.out_hw / 4e5 + block.out_chs / 500)


def sleep_exporter(drift_file: Path | None = None, scale: float = 1.0):
    def export(block: Block, fmt: str, seed: int) -> bytes:
        # exact: the agent reports the declared latency (times the drift), free of host jitter.
        return sleep_model(_latency_ms(block) * scale, drift_file=drift_file, tag=block.key, exact=True)
    return export


def _settings(**kw) -> ProfileSettings:
    base = dict(space=SPACE, resolutions=(RES,), runtime="sleep", fmt="json", plan=FAST_PLAN, sentinel_every=0,
                retry_backoff_s=0.05, agent_wait_s=5.0)
    base.update(kw)
    return ProfileSettings(**base)


def _agent(tmp_path: Path, name: str):
    log = tmp_path / f"{name}.jobs"
    proc = start_agent_process(token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log", str(log),
                                                        "--cpus", "all"])
    return proc, log


def _timed_keys(log: Path) -> Counter:
    if not log.exists():
        return Counter()
    keys = []
    for line in log.read_text().splitlines():
        try:
            keys.append(json.loads(line)["job_id"])
        except ValueError:  # a line the agent is still writing
            continue
    return Counter(keys)


def _row_counts(db: Path) -> tuple[int, int, str]:
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT setting_id || block_key) FROM lut_rows").fetchone()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return total, distinct, integrity


def test_two_agents_under_one_name_split_the_work_and_rerun_times_nothing(tmp_path):
    a, log_a = _agent(tmp_path, "a")
    b, log_b = _agent(tmp_path, "b")
    try:
        with LutStore(tmp_path / "lut.db") as store:
            agents = [AgentRef("board", a.address), AgentRef("board", b.address)]
            report = profile(store, agents, _settings(), token=TOKEN, export_fn=sleep_exporter())
            (dev,) = report.devices
            expected = {blk.key for blk in plan_blocks(SPACE, [RES])}
            assert dev.timed == len(expected) == dev.total and not dev.failed and not dev.aborted
            assert store.keys(dev.setting_id) == expected
            timed_a, timed_b = _timed_keys(log_a), _timed_keys(log_b)
            assert timed_a and timed_b, "both agents must take part"
            assert set(timed_a) | set(timed_b) == expected
            assert not set(timed_a) & set(timed_b), "no block is timed by both agents"
            assert 0 < dev.busy_fraction <= 1.0
            assert dev.round_spread is None and not dev.unsteady  # one round: nothing to compare

            again = profile(store, agents, _settings(), token=TOKEN, export_fn=sleep_exporter())
            assert again.devices[0].timed == 0 and again.devices[0].skipped == len(expected)
            assert sum(_timed_keys(log_a).values()) + sum(_timed_keys(log_b).values()) == len(expected)
    finally:
        a.stop()
        b.stop()
    total, distinct, integrity = _row_counts(tmp_path / "lut.db")
    assert total == distinct == len(expected) and integrity == "ok"


def test_agent_killed_mid_profile_work_finishes_on_the_other(tmp_path):
    a, log_a = _agent(tmp_path, "a")
    b, log_b = _agent(tmp_path, "b")
    killed = threading.Event()

    def on_progress(p):
        if p.done >= 20 and not killed.is_set():
            killed.set()
            a.proc.kill()  # SIGKILL, mid-job for all we know

    try:
        with LutStore(tmp_path / "lut.db") as store:
            agents = [AgentRef("board", a.address), AgentRef("board", b.address)]
            report = profile(store, agents, _settings(agent_wait_s=2.0), token=TOKEN,
                             export_fn=sleep_exporter(scale=3.0), on_progress=on_progress)
            (dev,) = report.devices
            expected = {blk.key for blk in plan_blocks(SPACE, [RES])}
            assert killed.is_set()
            assert not dev.aborted and not dev.failed
            assert store.keys(dev.setting_id) == expected  # 0 lost
    finally:
        a.stop()
        b.stop()
    total, distinct, integrity = _row_counts(tmp_path / "lut.db")
    assert total == distinct == len(expected) and integrity == "ok"  # 0 duplicated
    assert _timed_keys(log_b), "the surviving agent did the rest"


def test_every_agent_gone_aborts_with_a_resumable_report(tmp_path):
    a, _ = _agent(tmp_path, "a")

    def on_progress(p):
        if p.done >= 5 and a.alive():
            a.proc.kill()

    try:
        with LutStore(tmp_path / "lut.db") as store:
            report = profile(store, [AgentRef("solo", a.address)], _settings(agent_wait_s=1.0), token=TOKEN,
                             export_fn=sleep_exporter(scale=3.0), on_progress=on_progress)
            (dev,) = report.devices
            assert "every agent of 'solo' is gone" in dev.aborted and "rerun to resume" in dev.aborted
            kept = store.keys(dev.setting_id)
            assert 5 <= len(kept) < dev.total
    finally:
        a.stop()
    # A new agent resumes where the dead one stopped.
    c, log_c = _agent(tmp_path, "c")
    try:
        with LutStore(tmp_path / "lut.db") as store:
            report = profile(store, [AgentRef("solo", c.address)], _settings(), token=TOKEN, export_fn=sleep_exporter())
            (dev,) = report.devices
            assert dev.skipped == len(kept) and dev.timed == dev.total - len(kept)
            assert not set(_timed_keys(log_c)) & kept
    finally:
        c.stop()


def test_sentinel_drift_triggers_cooldown_and_retiming(tmp_path):
    drift = tmp_path / "drift"
    drift.write_text("1.0")
    a, log_a = _agent(tmp_path, "a")
    sentinel_key = sentinel_block(SPACE, RES).key

    heated = threading.Event()

    def on_progress(p):
        # After a dozen rows the device "heats up" by 30% (once); it cools back down during the cooldown.
        if p.done >= 12 and not heated.is_set():
            heated.set()
            drift.write_text("1.3")

    def cool_down_when_idle():
        # Once the agent has timed the sentinel in the drifted state, the device cools back down
        # during the scheduler's cooldown.
        if not wait_until(lambda: drift.read_text() == "1.3"):
            return
        # Two drifted readings: the first one and its immediate confirmation.
        readings = _timed_keys(log_a)[sentinel_key]
        if not wait_until(lambda: _timed_keys(log_a)[sentinel_key] >= readings + 2):
            return
        drift.write_text("1.0")

    cooler = threading.Thread(target=cool_down_when_idle, daemon=True)
    cooler.start()
    try:
        with LutStore(tmp_path / "lut.db") as store:
            settings = _settings(sentinel_every=10, sentinel_threshold=0.15, sentinel_cooldown_s=1.0,
                                 plan={**FAST_PLAN, "min_reps": 5, "max_reps": 5})
            report = profile(store, [AgentRef("hot", a.address)], settings, token=TOKEN,
                             export_fn=sleep_exporter(drift_file=drift, scale=5.0), on_progress=on_progress)
            (dev,) = report.devices
            assert dev.sentinel_drifts >= 1
            assert dev.retimed >= 1
            rows = store.rows(dev.setting_id)
            assert len(rows) == dev.total
            # Every stored row was measured with the clock back at 1.0: no row keeps the 30% drift.
            declared = {blk.key: 5.0 * _latency_ms(blk) for blk in plan_blocks(SPACE, [RES])}
            ratio = rows.set_index("block_key")["median_ms"] / rows["block_key"].map(declared).to_numpy()
            assert (ratio < 1.01).all(), ratio[ratio >= 1.01]
            assert rows["sentinel_drift"].notna().any()
    finally:
        a.stop()
    timed = _timed_keys(log_a)
    assert timed[sentinel_key] >= 5  # two baseline readings, the drifted one, its confirmation, one after the cooldown


def test_missing_runtime_and_no_agents_are_clear_errors(tmp_path):
    a, _ = _agent(tmp_path, "a")
    try:
        with LutStore(tmp_path / "lut.db") as store:
            with pytest.raises(ProfileError, match="has no runtime 'nonesuch'"):  # a caller's exporter: the agent says
                profile(store, [AgentRef("x", a.address)], _settings(runtime="nonesuch"), token=TOKEN,
                        export_fn=sleep_exporter())
            with pytest.raises(ValueError, match="^runtime must be one of onnxruntime, tflite, torch, benchmark_model, "
                                                 "got 'nonesuch'$"):  # the profiler's exporters: refused up front
                profile(store, [AgentRef("x", a.address)], _settings(runtime="nonesuch", fmt=""), token=TOKEN)
            with pytest.raises(ProfileError, match="no agents"):
                profile(store, [], _settings(), token=TOKEN, export_fn=sleep_exporter())
    finally:
        a.stop()


def test_more_threads_than_the_agent_times_on_is_refused_before_any_work(tmp_path):
    from agent.config import cpu_preference

    cpu = cpu_preference()[0]
    a = start_agent_process(token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--cpus", str(cpu)])
    exported = []

    def export(block, fmt, seed):
        exported.append(block.key)
        return sleep_model(1.0)

    try:
        with LutStore(tmp_path / "lut.db") as store:
            with pytest.raises(ProfileError, match=rf"times on 1 CPU\(s\) \({cpu}\), fewer than --threads 2"):
                profile(store, [AgentRef("x", a.address)], _settings(threads=2), token=TOKEN, export_fn=export)
            assert exported == [] and store.settings() == []
    finally:
        a.stop()


def test_a_two_thread_setting_records_the_two_cpus_its_jobs_ran_on(tmp_path):
    from agent.config import cpu_preference

    best = cpu_preference()
    if len(best) < 2:
        pytest.skip("needs two CPUs")
    a = start_agent_process(token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC])
    try:
        with LutStore(tmp_path / "lut.db") as store:
            report = profile(store, [AgentRef("x", a.address)], _settings(threads=2), token=TOKEN,
                             export_fn=sleep_exporter())
            assert not report.devices[0].failed
            assert store.setting("x").info["timing_cpus"] == ",".join(map(str, sorted(best[:2])))
    finally:
        a.stop()


def test_resuming_a_multi_thread_setting_warns_of_rows_timed_on_one_core(tmp_path, caplog):
    a, _ = _agent(tmp_path, "a")
    db = tmp_path / "lut.db"
    try:
        with LutStore(db) as store:
            with caplog.at_level("WARNING", logger="profiler.fleet"):
                profile(store, [AgentRef("x", a.address)], _settings(threads=2), token=TOKEN, export_fn=sleep_exporter())
            assert "on one core" not in caplog.text, "rows of this agent are fine"
        with sqlite3.connect(db) as conn:  # as an agent before one-core-per-thread would have left them
            conn.execute("UPDATE lut_rows SET agent_version = '0.1.0' WHERE rowid % 2 = 0")
            conn.execute("DELETE FROM lut_rows WHERE rowid % 5 = 1")
        caplog.clear()
        with LutStore(db) as store, caplog.at_level("WARNING", logger="profiler.fleet"):
            report = profile(store, [AgentRef("x", a.address)], _settings(threads=2), token=TOKEN,
                             export_fn=sleep_exporter())
        assert report.devices[0].skipped < report.devices[0].total
        assert "2-thread setting were timed by agent 0.1.0, which ran every thread on one core" in caplog.text
    finally:
        a.stop()


@pytest.mark.timeout(300)
def test_onnxruntime_profile_fills_exactly_the_space_and_predicts(tmp_path):
    """A real profile: w1.0 at one resolution with onnxruntime, 1 thread, then lut predict works for any subnet."""
    agent = start_agent_process(token=TOKEN)
    res = 128
    try:
        with LutStore(tmp_path / "lut.db") as store:
            settings = ProfileSettings(space=SPACE, resolutions=(res,), runtime="onnxruntime", threads=1,
                                       plan={"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0,
                                             "max_reps": 10, "max_s": 0.3, "target_rel_ci": 0.05},
                                       sentinel_every=0, cache_dir=str(tmp_path / "artifacts"))
            report = profile(store, [AgentRef("local", agent.address)], settings, token=TOKEN)
            (dev,) = report.devices
            assert not dev.failed and not dev.aborted
            space = get_space(SPACE)
            assert store.keys(dev.setting_id) == {b.key for b in space.unique_blocks(res)}
            assert report.exported == len(space.unique_blocks(res))  # a fresh artifact cache
            compiled = CompiledLut.from_store(store, "local", SPACE)
            assert compiled.resolutions == (res,)
            import numpy as np

            batch = space.sample(50, np.random.default_rng(0), resolutions=[res])
            lat = compiled.predict_batch(batch)
            assert np.all(lat > 0)
            stored = store.setting("local")
            setting = stored.setting
            assert (setting.runtime, setting.threads, setting.model_format) == ("onnxruntime", 1, "onnx")
            from agent.config import pick_timing_cpu

            assert stored.info["timing_cpus"] == str(pick_timing_cpu()), "the LUT records the CPU its blocks ran on"
    finally:
        agent.stop()


def test_a_one_off_sentinel_outlier_is_not_a_drift(tmp_path):
    a, log_a = _agent(tmp_path, "a")
    sentinel_key = sentinel_block(SPACE, RES).key
    runs = tmp_path / "sentinel.runs"
    # The sentinel block's timings in order: the two baseline readings, then the first check runs 40% slow
    # and the device is quiet again from the next timing on (the check's immediate confirmation). The model
    # counts its own timings, so the outlier hits exactly that reading however loaded the host is.
    factors = (1.0, 1.0, 1.4, 1.0)

    def export(block: Block, fmt: str, seed: int) -> bytes:
        if block.key == sentinel_key:
            return sleep_model(_latency_ms(block), runs_file=runs, factors=factors, tag=block.key, exact=True)
        return sleep_model(_latency_ms(block), tag=block.key, exact=True)

    try:
        with LutStore(tmp_path / "lut.db") as store:
            settings = _settings(sentinel_every=10, sentinel_threshold=0.15, sentinel_cooldown_s=1.0)
            report = profile(store, [AgentRef("calm", a.address)], settings, token=TOKEN, export_fn=export)
            (dev,) = report.devices
            assert dev.sentinel_drifts == 0 and dev.retimed == 0
            assert dev.sentinel_transients == 1
            assert dev.timed == dev.total
            # The block's own row was timed quiet: the outlier went to the sentinel's check only.
            row = store.rows(dev.setting_id).set_index("block_key").loc[sentinel_key]
            assert row["median_ms"] == pytest.approx(_latency_ms(sentinel_block(SPACE, RES)))
    finally:
        a.stop()
    assert len(runs.read_text().splitlines()) == _timed_keys(log_a)[sentinel_key] >= 4


def test_rounds_time_every_block_in_each_round_and_keep_the_lowest_median(tmp_path, caplog):
    drift = tmp_path / "drift"
    drift.write_text("1.5")  # a noisy first round
    a, log_a = _agent(tmp_path, "a")
    n_blocks = len(plan_blocks(SPACE, [RES]))

    def quiet_after_round_one():
        if not wait_until(lambda: sum(_timed_keys(log_a).values()) >= n_blocks):
            return
        drift.write_text("1.0")

    threading.Thread(target=quiet_after_round_one, daemon=True).start()
    seen = []
    try:
        with LutStore(tmp_path / "lut.db") as store:
            with caplog.at_level("WARNING", logger="profiler.fleet"):
                report = profile(store, [AgentRef("r3", a.address)], _settings(rounds=3), token=TOKEN,
                                 export_fn=sleep_exporter(drift_file=drift), on_progress=lambda p: seen.append(p.done))
            (dev,) = report.devices
            assert dev.timed == dev.total == n_blocks
            rows = store.rows(dev.setting_id).set_index("block_key")
            declared = {blk.key: _latency_ms(blk) for blk in plan_blocks(SPACE, [RES])}
            ratio = rows["median_ms"] / rows.index.map(declared).to_numpy()
            assert (abs(ratio - 1.0) < 1e-6).all()  # the quiet rounds win
            medians = json.loads(rows["extra"].iloc[0])["round_medians_ms"]
            assert len(medians) == 3 and max(medians) > 1.4 * min(medians)
            # the report says how far rounds disagreed (the first ran 1.5x slow) and warns of unsteady timing
            spreads = [max(m) / min(m) - 1 for m in rows["extra"].map(lambda e: json.loads(e)["round_medians_ms"])]
            assert dev.round_spread == pytest.approx(statistics.median(spreads)) and 0.4 < dev.round_spread < 0.6
            assert stored_round_spread(store, dev.setting_id) == pytest.approx(dev.round_spread)  # lut list's figure
            assert dev.unsteady and dev.to_dict()["round_spread_pct"] == pytest.approx(100 * dev.round_spread, abs=0.01)
            assert "r3: a block's rounds differ by a median 5" in caplog.text and "more --rounds" in caplog.text
    finally:
        a.stop()
    counts = _timed_keys(log_a)
    assert len(counts) == n_blocks and set(counts.values()) == {3}  # each block once per round
    assert seen == sorted(seen) and seen[-1] == n_blocks


def test_settings_are_validated_where_used(tmp_path):
    with LutStore(tmp_path / "lut.db") as store:
        for bad in ({"sentinel_retries": -1}, {"pipeline_depth": 0}, {"rounds": 0}, {"resolutions": ()},
                    {"job_timeout_s": 0.0}, {"sentinel_threshold": 0.0}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                profile(store, [AgentRef("x", "127.0.0.1:1")], _settings(**bad), token=TOKEN)


def test_zero_sentinel_retries_rebase_at_once(tmp_path):
    """With no re-readings after a confirmed drift, the sentinel takes the drifted level as its new baseline."""
    drift = tmp_path / "drift"
    drift.write_text("1.0")
    a, _ = _agent(tmp_path, "a")

    def on_progress(p) -> None:
        if p.done >= 15:  # the device settles 30% slower for good
            drift.write_text("1.3")

    try:
        with LutStore(tmp_path / "lut.db") as store:
            # A long cooldown: with zero retries none is taken, so the run stays quick.
            settings = _settings(sentinel_every=10, sentinel_threshold=0.15, sentinel_retries=0,
                                 sentinel_cooldown_s=120.0)
            report = profile(store, [AgentRef("hot", a.address)], settings, token=TOKEN,
                             export_fn=sleep_exporter(drift_file=drift), on_progress=on_progress)
            (dev,) = report.devices
            assert not dev.aborted and not dev.failed
            assert dev.sentinel_drifts == 1  # re-based once; later readings match the new baseline
            assert dev.retimed >= 1
            assert len(store.rows(dev.setting_id)) == dev.total
    finally:
        a.stop()


def test_the_callers_stop_event_ends_a_run_and_is_only_read(tmp_path):
    """Setting ``stop`` (what Ctrl-C does) ends a profile early and a rerun resumes; the profile only reads the
    event, so a finished run leaves it unset and one event serves several calls."""
    a, _ = _agent(tmp_path, "a")
    stop = threading.Event()

    def ctrl_c_after_ten_rows(event) -> None:
        if event.done >= 10:
            stop.set()

    try:
        with LutStore(tmp_path / "lut.db") as store:
            agents = [AgentRef("board", a.address)]
            first = profile(store, agents, _settings(), token=TOKEN, export_fn=sleep_exporter(), stop=stop)
            assert not first.stopped and first.devices[0].timed == first.devices[0].total
            assert not stop.is_set()
            second = profile(store, agents, _settings(resolutions=(160,)), token=TOKEN, export_fn=sleep_exporter(),
                             stop=stop, on_progress=ctrl_c_after_ten_rows)
            (dev,) = second.devices
            assert second.stopped and 10 <= dev.skipped + dev.timed < dev.total and not dev.failed  # done counts both
            rest = profile(store, agents, _settings(resolutions=(160,)), token=TOKEN, export_fn=sleep_exporter(),
                           stop=threading.Event())
            assert not rest.stopped and rest.devices[0].skipped == dev.skipped + dev.timed
            assert rest.devices[0].timed == dev.total - dev.skipped - dev.timed
    finally:
        a.stop()
