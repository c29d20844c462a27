"""Who may call the agent: the token and TLS matrix, each cell a real call to a TLS agent on loopback.

| caller                          | health | GetDeviceInfo, HasModels, Benchmark |
|---------------------------------|--------|-------------------------------------|
| no token                        | OK     | UNAUTHENTICATED                     |
| wrong token                     | OK     | UNAUTHENTICATED                     |
| a token under another scheme    | OK     | UNAUTHENTICATED                     |
| right token                     | OK     | OK                                  |
| right token, TLS with a wrong CA| UNAVAILABLE (handshake fails)        |
| right token, plaintext          | UNAVAILABLE                          |
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.testing import SLEEP_RUNTIME_SPEC, sleep_model, start_agent_process
from profiler.client import make_job
from protos import agent_pb2, agent_pb2_grpc

from ._harness import FAST_PLAN, TOKEN

_METHODS = ("health", "GetDeviceInfo", "HasModels", "Benchmark")


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def _call(channel: grpc.Channel, method: str, metadata: tuple) -> tuple[str, str]:
    """Make one call; (status name, one-line details)."""
    stub = agent_pb2_grpc.AgentStub(channel)
    try:
        if method == "health":
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        elif method == "GetDeviceInfo":
            stub.GetDeviceInfo(agent_pb2.DeviceInfoRequest(), timeout=10, metadata=metadata)
        elif method == "HasModels":
            stub.HasModels(agent_pb2.HasModelsRequest(sha256=["0" * 64]), timeout=10, metadata=metadata)
        else:
            job = make_job(sleep_model(0.5), runtime="sleep", plan=FAST_PLAN, job_id="auth")
            (result,) = list(stub.Benchmark(iter([job]), timeout=30, metadata=metadata))
            assert result.WhichOneof("outcome") == "stats", result.error
    except grpc.RpcError as err:
        return err.code().name, " ".join((err.details() or "").split())
    return "OK", ""


def test_auth_matrix(tmp_path: Path, tally) -> None:
    cert, key = _self_signed(tmp_path, "agent")
    other_ca, _ = _self_signed(tmp_path, "other")
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    wrong_creds = grpc.ssl_channel_credentials(root_certificates=other_ca.read_bytes())
    callers = {
        "no token": (creds, ()),
        "wrong token": (creds, (("authorization", "Bearer not-the-token"),)),
        "other scheme": (creds, (("authorization", f"Basic {TOKEN}"),)),
        "right token": (creds, (("authorization", f"Bearer {TOKEN}"),)),
        "wrong CA": (wrong_creds, (("authorization", f"Bearer {TOKEN}"),)),
        "plaintext": (None, (("authorization", f"Bearer {TOKEN}"),)),
    }
    expected = {
        "no token": ["OK", "UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"],
        "wrong token": ["OK", "UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"],
        "other scheme": ["OK", "UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"],
        "right token": ["OK", "OK", "OK", "OK"],
        "wrong CA": ["UNAVAILABLE"] * 4,
        "plaintext": ["UNAVAILABLE"] * 4,
    }
    got: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    agent = start_agent_process(token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--tls-cert", str(cert),
                                                        "--tls-key", str(key), "--cpus", "all"])
    try:
        assert "tls=on" in agent.ready_line
        for caller, (channel_creds, metadata) in callers.items():
            # A fresh channel per caller: a failed handshake must not be cached into the next cell.
            if channel_creds is None:
                channel = grpc.insecure_channel(agent.address)
            else:
                channel = grpc.secure_channel(agent.address, channel_creds)
            with channel:
                cells = [_call(channel, method, metadata) for method in _METHODS]
            got[caller] = [code for code, _ in cells]
            reasons[caller] = [why for _, why in cells]
        assert agent.alive()
    finally:
        agent.stop()
    tally.add(requests_tried=len(callers) * len(_METHODS), faults_injected=len(callers) - 1)
    assert got == expected
    # Every refusal carries a one-line reason; the token ones say what is wrong.
    for caller, row in got.items():
        for code, why in zip(row, reasons[caller]):
            assert code == "OK" or (why and "\n" not in why), (caller, code, why)
    assert "missing 'authorization" in reasons["no token"][1]
    assert "invalid token" in reasons["wrong token"][1]
    assert "Bearer" in reasons["other scheme"][1]
