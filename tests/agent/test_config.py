"""Flag parsing shared by ``python -m agent`` and ``lutnas agent serve``."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import build_config, resolve_token
from agent.config import CAN_PIN, allowed_cpus, parse_cpus


def test_parse_cpus() -> None:
    assert parse_cpus("all") is None
    if not CAN_PIN:
        pytest.skip("no CPU affinity API here")
    cpus = sorted(allowed_cpus())
    (auto,) = parse_cpus("auto")
    assert auto in cpus
    assert parse_cpus(f"{cpus[0]}-{cpus[-1]}") == tuple(cpus)
    with pytest.raises(ValueError, match="--cpus"):
        parse_cpus("two")
    with pytest.raises(ValueError, match="outside"):
        parse_cpus("4096")


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    echoed: list[str] = []
    token_file = tmp_path / "t"
    token_file.write_text("abc\n")
    assert resolve_token(token_file, False, echoed.append) == ("abc", f"token (file {token_file})")
    monkeypatch.setenv("LUTNAS_TOKEN", "from-env")
    assert resolve_token(None, False, echoed.append)[0] == "from-env"
    assert resolve_token(None, True, echoed.append)[0] is None
    monkeypatch.delenv("LUTNAS_TOKEN")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    token, desc = resolve_token(None, False, echoed.append)
    written = tmp_path / "cfg" / "lutnas" / "agent.token"
    assert written.read_text().strip() == token and str(written) in desc and echoed
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="empty"):
        resolve_token(tmp_path / "empty", False, echoed.append)


def test_build_config_checks_flag_pairs() -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key"):
        build_config(token="t", tls_cert=Path("c.pem"))
    with pytest.raises(ValueError, match="--port"):
        build_config(token="t", port=70000)
    config = build_config(token="t", runtimes="onnxruntime, tflite", cpus="all")
    assert config.runtimes == ("onnxruntime", "tflite") and config.cpus is None and not config.tls
