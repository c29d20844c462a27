"""Bearer tokens and TLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509  # noqa: F401  (preferred when installed)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs the cryptography package or the openssl CLI")
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pk.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(pk, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


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
