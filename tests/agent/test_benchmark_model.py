"""The benchmark_model runtime, driven through an agent with a fake binary."""

from __future__ import annotations

import sys
from pathlib import Path

from agent.testing import start_agent_process, tflite_add
from profiler.client import AgentClient, make_job

_FAKE = """#!{python}
import sys
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
open(args["graph"], "rb").read()
print("STARTING!")
print("Num threads: [" + args["num_threads"] + "]")
print("Timings (microseconds): count=1 first=9000 curr=9000 min=9000 max=9000 avg=9000 std=0")
if args.get("fail") == "yes":
    sys.exit(3)
print("Timings (microseconds): count=42 first=1200 curr=1100 min=1000 max=1500 avg=1150.5 std=80")
"""


def test_benchmark_model_runtime(tmp_path: Path) -> None:
    fake = tmp_path / "benchmark_model"
    fake.write_text(_FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    with start_agent_process(extra_args=["--benchmark-model-bin", str(fake), "--runtimes", "benchmark_model"]) as agent:
        assert "runtimes=benchmark_model" in agent.ready_line
        with AgentClient(agent.address, token=agent.token) as client:
            names = {r.name: r for r in client.device_info().runtimes}
            assert names["benchmark_model"].available and names["onnxruntime"].detail == "disabled by --runtimes"
            result = client.time_model(tflite_add(8), "benchmark_model", threads=2)
            s = result.stats
            assert s.summary_only and s.n == 42
            assert abs(s.mean_ms - 1.1505) < 1e-9 and abs(s.min_ms - 1.0) < 1e-9 and abs(s.std_ms - 0.08) < 1e-9
            assert result.stop_reason == "summary" and "binary" not in result.options
            jobs = [
                make_job(tflite_add(8), runtime="benchmark_model", options={"flag.fail": "yes"}),
                make_job(tflite_add(8), runtime="benchmark_model", options={"binary": "/bin/sh"}),
                make_job(tflite_add(8), runtime="onnxruntime"),
            ]
            codes = [r.error.code for r in client.benchmark(jobs)]
            assert codes == ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "FAILED_PRECONDITION"]
