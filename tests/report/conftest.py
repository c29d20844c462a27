"""A store to report on: a real LUT (the i7-8700K table from nsganetv2), a local onnxruntime setting at two
precisions whose fp32 LUT is validated against whole networks timed on a real agent, a device whose name is
markup, and an accuracy predictor trained on the bundled DyNAS-T data."""

from __future__ import annotations

from pathlib import Path

import pytest

from lut import DeviceSetting, LutStore, import_files
from space import get_space
from tests.conftest import SHARED_DATA

SPACE = "ofa-mbv3-w1.0"
RES = 224  # the bundled accuracy data's resolution: the predictor searches here
TOKEN = "report-test-token"
HOSTILE = "<script>alert(1)</script>"
QUICK_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 5, "max_s": 0.2,
              "target_rel_ci": 0.2}
I7 = (SHARED_DATA or Path("/nonexistent")) / "nsganetv2" / "i7-8700K_lut.yaml"  # Apache-2.0


def _block_ms(block, precision: str) -> float:
    # A plausible LUT whose sums vary across subnets (the agent times the whole networks for real); at int8 the
    # 7x7 kernels get slower and the rest faster, the cliff a precision comparison should show.
    ms = 0.02 + block.mid_chs * block.out_hw * block.out_hw * (block.kernel or 1) / 4e6 + block.out_chs / 4e4
    if precision == "int8":
        ms *= 1.4 if block.kernel == 7 else 0.7
    return ms


def _fill(store: LutStore, precision: str) -> None:
    import onnxruntime

    setting = DeviceSetting(name="local", runtime="onnxruntime", runtime_version=onnxruntime.__version__, threads=1,
                            precision=precision, model_format="onnx")
    sid = store.ensure_setting(setting, info={"board": "test host", "cpu_model": "x86 test cpu", "cpu_cores": 2})
    rows = []
    for b in get_space(SPACE).unique_blocks(RES):
        ms = _block_ms(b, precision)
        rows.append((b.key, {"median_ms": ms, "mean_ms": ms, "std_ms": 0.0, "p10_ms": ms, "p90_ms": ms, "n": 5},
                     {"extra": {"options": {"clock": "thread_cpu"}}}))
    store.put_rows(sid, rows)


@pytest.fixture(scope="session")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store (never written to by tests)."""
    from agent.testing import start_agent_process
    from profiler.validate import ValidationSettings, validate

    if not I7.is_file():
        pytest.skip(f"reference data not found: {I7}")
    path = tmp_path_factory.mktemp("report") / "lut.db"
    with LutStore(path) as store:
        import_files(store, DeviceSetting("i7", "unknown"), [I7])
        _fill(store, "fp32")
        _fill(store, "int8")
        import_files(store, DeviceSetting(HOSTILE, "unknown"), [I7])
        agent = start_agent_process(token=TOKEN)
        try:
            settings = ValidationSettings(samples=5, rounds=2, plan=QUICK_PLAN, space=SPACE, resolutions=(RES,),
                                          calibrate=True, export_workers=0)
            validate(store, "local:fp32", agent.address, settings, token=TOKEN)
        finally:
            agent.stop()
    return path


@pytest.fixture(scope="session")
def predictor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lutnas's accuracy predictor trained on the bundled DyNAS-T accuracies (w1.0, r=224)."""
    from lutnas.demo import bundled_accuracy_files
    from search import LutnasPredictor, load_accuracy_data

    train, _ = bundled_accuracy_files()
    path = tmp_path_factory.mktemp("predictor") / "pred.pt"
    LutnasPredictor(space=SPACE, random_state=0).fit_data(load_accuracy_data(train)).save(path)
    return path
