"""Bearer tokens and TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.certs import make_self_signed
from agent.testing import AgentProcess, start_agent_process
from profiler.client import AgentAuthError, AgentClient, AgentUnavailable

from .conftest import FAST_PLAN


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_rejects_missing_or_wrong_token(shared_agent: AgentProcess, token: str | None, onnx_model: bytes) -> None:
    with AgentClient(shared_agent.address, token=token, retry_s=2.0) as client:
        assert client.health() == "SERVING"  # health is exempt
        with pytest.raises(AgentAuthError) as info:
            client.device_info()
        assert info.value.code == "UNAUTHENTICATED" and shared_agent.address in str(info.value)
        with pytest.raises(AgentAuthError):
            client.has_models(["0" * 64])
        with pytest.raises(AgentAuthError):
            client.time_model(onnx_model, "onnxruntime", plan=FAST_PLAN)


def test_right_token(shared_agent: AgentProcess) -> None:
    with AgentClient(shared_agent.address, token=shared_agent.token) as client:
        assert client.device_info().auth_required


def test_insecure_no_auth() -> None:
    with start_agent_process(token=None) as agent:
        assert "auth=none" in agent.ready_line
        with AgentClient(agent.address) as client:
            assert not client.device_info().auth_required


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    pair = make_self_signed(tmp_path, ["localhost", "127.0.0.1"], days=1)
    return pair.cert, pair.key


def test_tls_with_self_signed_certificate(tmp_path: Path, onnx_model: bytes) -> None:
    cert, key = _self_signed(tmp_path)
    with start_agent_process(extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]) as agent:
        assert "tls=on" in agent.ready_line
        with AgentClient(agent.address, token=agent.token, tls_ca=cert) as client:
            info = client.device_info()
            assert info.tls
            assert client.time_model(onnx_model, "onnxruntime", plan=FAST_PLAN).stats.n >= 5
        # Plaintext to a TLS port never connects.
        with AgentClient(agent.address, token=agent.token, retry_s=1.0, timeout_s=2.0) as plain:
            with pytest.raises(AgentUnavailable):
                plain.device_info()
