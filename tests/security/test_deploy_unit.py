"""The shipped systemd unit starts a safe agent: loopback, token, no no-auth flag."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from agent.cli import build_parser
from agent.config import is_loopback

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "lutnas-agent.service"


def _exec_args() -> list[str]:
    text = UNIT.read_text()
    env = dict(m.groups() for m in re.finditer(r'^Environment="(\w+)=([^"]*)"$', text, re.M))
    command = re.search(r"^ExecStart=(.*?[^\\])$", text, re.M | re.S).group(1).replace("\\\n", " ")
    words = shlex.split(command)
    # systemd splits an unbraced $VAR into words, as the shell would.
    expanded = [w for word in words for w in (env[word[1:]].split() if word.startswith("$") else [word])]
    assert expanded[1:3] == ["-m", "agent"]
    return expanded[3:]


def test_unit_default_is_loopback_with_a_token() -> None:
    args = build_parser().parse_args(_exec_args())
    assert is_loopback(args.host) and args.token_file is not None and not args.insecure_no_auth
    assert "lutnas agent cert" in UNIT.read_text() and "--tls-ca" in UNIT.read_text()
