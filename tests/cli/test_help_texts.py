"""Messages a new user meets: warnings without internal module names, a predictor fit on few points flagged."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_DATA

from .conftest import invoke, one_line

DYNAST = (SHARED_DATA or Path("/nonexistent")) / "dynast"


def test_predictor_fit_on_few_points_warns(tmp_path: Path, one_torch_thread: None) -> None:
    few = tmp_path / "few.csv"
    few.write_text("".join((DYNAST / "mbnv3w10_evoga_acc.csv").read_text().splitlines(keepends=True)[:31]))
    result = invoke("predictor", "train", "--data", few, "--out", tmp_path / "p.pt", "--json")
    assert result.exit_code == 0, result.output
    assert "warning: fit on only 30 subnets" in one_line(result.stderr)
    pred = tmp_path / "p.pt"
    eval_ = invoke("predictor", "eval", "--predictor", SHARED_DATA / "ofa" / "acc_predictor.pth", "--data",
                   DYNAST / "mbnv3w10_linasga_acc.csv")
    assert eval_.exit_code == 0 and pred.is_file()
    assert "warning: the data looks like ofa-mbv3-w1.0 but the predictor is for ofa-mbv3-w1.2" in one_line(eval_.stderr)
    assert "lutnas.commands" not in eval_.stderr


def test_token_hint_once_and_time_names_its_clock(tmp_path: Path, monkeypatch) -> None:
    from agent.testing import onnx_matmul_relu, start_agent_process

    monkeypatch.delenv("LUTNAS_TOKEN", raising=False)
    model = tmp_path / "mm.onnx"
    model.write_bytes(onnx_matmul_relu(16, 16, 16))
    with start_agent_process(token="secret-token") as agent:
        refused = invoke("devices", "--agent", agent.address)
        assert refused.exit_code == 2 and one_line(refused.stderr).count("LUTNAS_TOKEN") == 1
        token = tmp_path / "token"
        token.write_text("secret-token")
        timed = invoke("time", "--agent", f"box={agent.address}", model, "--token-file", token)
        assert timed.exit_code == 0, timed.output
        assert "clock" in timed.stderr and "thread CPU time" in one_line(timed.stderr)
        doc = invoke("time", "--agent", f"box={agent.address}", model, "--token-file", token, "--json")
        assert '"clock": "thread_cpu"' in doc.stdout
