"""``lutnas agent serve|cert|token``, ``lutnas devices`` and ``lutnas time``: run an agent and talk to agents.

The work of ``devices`` and ``time`` is :func:`profiler.agents.device_facts` and :func:`profiler.agents.time_model_file`
(``from lutnas import devices, time_model``); these commands parse flags, make that call and render its report.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from lutnas._calls import library_call
from lutnas._common import EXIT_FAILED, EXIT_USAGE, err_console, fail, note, parse_options, read_token, show
from lutnas._options import CONNECT_TIMEOUT, JSON, OLD_TIMEOUT, RUNTIME_OPTION, TLS_CA, TOKEN_FILE, connect_timeout
from lutnas._text import escape_controls, literal
from lutnas.views import agent as view

__all__ = ["register"]

agent_app = typer.Typer(help="Run the timing agent on this device.", no_args_is_help=True)


@agent_app.command("serve")
def serve_cmd(
    host: str | None = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port; 0 picks a free one (default 50051)."),
    token_file: Path | None = typer.Option(None, help="File holding the bearer token (else $LUTNAS_TOKEN, else one is generated)."),
    insecure_no_auth: bool = typer.Option(False, "--insecure-no-auth", help="Accept calls without a token (loopback binds only)."),
    tls_cert: Path | None = typer.Option(None, help="PEM certificate chain (with --tls-key)."),
    tls_key: Path | None = typer.Option(None, help="PEM private key (with --tls-cert)."),
    runtimes: str | None = typer.Option(None, help="Comma-separated runtimes to offer (default: every installed one)."),
    extra_runtime: list[str] = typer.Option([], "--extra-runtime", help="Plug in a runtime class MODULE:CLASS (repeatable)."),
    cache_dir: Path | None = typer.Option(None, help="Model blob cache directory."),
    cache_mb: int | None = typer.Option(None, help="Cache size cap in MB (default 2048)."),
    max_message_mb: int | None = typer.Option(None, help="Largest gRPC message in MB (default 64)."),
    cpus: str = typer.Option("auto", help="Pin the timing worker: auto (the fastest core; a job with N threads gets the N fastest), all, or a list like 4-7."),
    job_timeout_s: float | None = typer.Option(None, help="Deadline of a job that names none (default 300)."),
    job_log: Path | None = typer.Option(None, help="Append one JSON line per completed timing job."),
    name: str | None = typer.Option(None, help="Device name the agent reports (default: hostname). A host's "
                                    "--agent NAME=HOST:PORT names the LUT and wins; a bare --agent HOST:PORT uses this."),
    benchmark_model_bin: Path | None = typer.Option(None, help="TFLite benchmark_model binary (a path on the phone with --adb)."),
    adb: str | None = typer.Option(None, "--adb", metavar="SERIAL", help="Time the adb-attached phone SERIAL with benchmark_model; the agent runs here."),
    max_worker_mb: int | None = typer.Option(None, help="Memory cap of the timing worker in MB; a job over it fails (default: half the RAM; 0: none)."),
    delegate: list[str] = typer.Option([], "--delegate", help="Allow jobs to use this TFLite delegate by name: NAME=PATH (repeatable); jobs never name paths."),
    max_streams: int | None = typer.Option(None, help="Open Benchmark streams in all (default 16)."),
    max_streams_per_client: int | None = typer.Option(None, help="Open Benchmark streams per client address (default 4)."),
    stream_idle_s: float | None = typer.Option(None, help="Close a stream that sends no job for this long (default 600)."),
) -> None:
    """Serve the timing agent until interrupted.

    Make a token file first with `lutnas agent token --out token.txt` and pass --token-file token.txt here and on
    the hosts (without one the agent writes a fresh token under ~/.config/lutnas and says where)."""
    from agent import cli as agent_cli

    def echo(line: str) -> None:
        sys.stdout.write(escape_controls(line) + "\n")  # lines quote the --name and paths given
        sys.stdout.flush()

    # Unset flags take the agent's own defaults, so the two entry points cannot drift apart.
    flags = dict(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, runtimes=runtimes, cache_dir=cache_dir,
                 cache_mb=cache_mb, max_message_mb=max_message_mb, cpus=cpus, job_timeout_s=job_timeout_s,
                 job_log=job_log, name=name, benchmark_model_bin=benchmark_model_bin, adb_serial=adb,
                 max_worker_mb=max_worker_mb, max_streams=max_streams, max_streams_per_client=max_streams_per_client,
                 stream_idle_s=stream_idle_s)
    with library_call():
        token, auth_desc = agent_cli.resolve_token(token_file, insecure_no_auth, echo)
        config = agent_cli.build_config(token=token, insecure_no_auth=insecure_no_auth, extra_runtimes=extra_runtime,
                                        delegates=delegate, **{k: v for k, v in flags.items() if v is not None})
        logging.getLogger("agent").setLevel(logging.INFO)
        agent_cli.serve(config, auth_desc, echo)


@agent_app.command("cert")
def cert_cmd(
    out_dir: Path = typer.Option(Path("."), "--out-dir", help="Folder for agent.crt and agent.key."),
    name: list[str] = typer.Option([], "--name", help="Host name or IP address clients dial (repeatable; "
                                   "default: this host's name, localhost, 127.0.0.1, ::1)."),
    days: int = typer.Option(825, help="Days the certificate stays valid."),
    force: bool = typer.Option(False, "--force", help="Replace an existing pair."),
    json_out: bool = JSON,
) -> None:
    """Make a self-signed TLS pair for an agent and print the fingerprint hosts pin."""
    from agent.certs import default_names, make_self_signed

    with library_call():
        try:
            pair = make_self_signed(out_dir, name or default_names(), days=days, overwrite=force)
        except ImportError as err:  # the cryptography extra is missing: the user's setup
            raise ValueError(str(err)) from err
        except OSError as err:
            raise OSError(f"cannot write the pair to {out_dir}: {err.strerror or err}") from None
    show(pair, json_out, view.render_cert)


@agent_app.command("token")
def token_cmd(
    out: Path = typer.Option(..., "--out", help="File to write the token to (created with mode 600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Make a fresh bearer token file for `agent serve --token-file` and the hosts' --token-file."""
    from agent.auth import create_token_file

    with library_call():
        path = create_token_file(out, overwrite=force)
    view.render_token(path)


def devices_cmd(
    addresses: list[str] = typer.Argument(None, help="Agents as HOST:PORT (or NAME=HOST:PORT); same as --agent.",
                                          show_default=False),
    agent: list[str] = typer.Option([], "--agent", help="Agent as [NAME=]HOST:PORT (repeatable)."),
    token_file: Path | None = TOKEN_FILE,
    tls_ca: Path | None = TLS_CA,
    connect_timeout_s: float | None = CONNECT_TIMEOUT,
    timeout_s: float | None = OLD_TIMEOUT,
    json_out: bool = JSON,
) -> None:
    """Show device facts of one or more agents as one table."""
    from profiler.agents import device_facts

    texts = [*(addresses or []), *agent]
    if not texts:
        fail("give at least one agent: --agent [NAME=]HOST:PORT", EXIT_USAGE)
    with library_call():
        report = device_facts(texts, token=read_token(token_file), tls_ca=tls_ca,
                              connect_timeout_s=connect_timeout(connect_timeout_s, old=timeout_s))
    show(report, json_out, view.render_devices)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def time_cmd(
    model_file: Path = typer.Argument(..., help="Model file: .onnx, .tflite, .pt (TorchScript) or .pt2 (torch.export)."),
    agent: str = typer.Option(..., "--agent", help="Agent as [NAME=]HOST:PORT; the result names the device NAME, "
                              "else the name the agent reports (as in profile and validate)."),
    runtime: str | None = typer.Option(None, help="Runtime on the agent (default: from the file extension)."),
    threads: int = typer.Option(1, help="Runtime threads."),
    shape: list[str] = typer.Option([], "--shape", help="Input shape as NAME=1x3x224x224 or 1x3x224x224 (repeatable, by position)."),
    option: list[str] = RUNTIME_OPTION,
    samples: bool = typer.Option(False, "--samples", help="Include every timed sample."),
    token_file: Path | None = TOKEN_FILE,
    tls_ca: Path | None = TLS_CA,
    connect_timeout_s: float | None = CONNECT_TIMEOUT,
    timeout_s: float | None = OLD_TIMEOUT,
    json_out: bool = JSON,
) -> None:
    """Time any model file on a device and print its latency statistics."""
    from profiler.agents import time_model_file

    with library_call(), err_console.status(literal(f"timing {model_file.name} ..."), spinner="dots"):
        report = time_model_file(agent, model_file, runtime=runtime, threads=threads, shapes=shape,
                                 options=parse_options(option), samples=samples, token=read_token(token_file),
                                 tls_ca=tls_ca, notify=note,
                                 connect_timeout_s=connect_timeout(connect_timeout_s, old=timeout_s))
    show(report, json_out, view.render_timing, model_file.name)


def register(app: typer.Typer) -> None:
    """Add ``agent serve``, ``agent cert``, ``agent token``, ``devices`` and ``time`` to ``app``."""
    app.add_typer(agent_app, name="agent")
    app.command("devices")(devices_cmd)
    app.command("time")(time_cmd)
