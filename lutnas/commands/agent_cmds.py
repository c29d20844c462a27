"""``lutnas agent serve``, ``lutnas devices`` and ``lutnas time``: run an agent and talk to agents."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from lutnas._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    agent_device_name,
    connect_timeout_option,
    emit_json,
    err_console,
    fail,
    parse_agent_spec,
    parse_options,
    positive_number,
    read_token,
)
from lutnas._text import escape_controls, literal

__all__ = ["register"]

# Job errors that mean the user's input was bad (exit 2) rather than the work failing (exit 1).
_BAD_INPUT_CODES = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"})

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
    """Serve the timing agent until interrupted."""
    from agent import cli as agent_cli
    from agent import config as agent_config

    def echo(line: str) -> None:
        sys.stdout.write(escape_controls(line) + "\n")  # lines quote the --name and paths given
        sys.stdout.flush()

    # Unset flags take the agent's own defaults, so the two entry points cannot drift apart.
    try:
        token, auth_desc = agent_cli.resolve_token(token_file, insecure_no_auth, echo)
        config = agent_cli.build_config(
            host=host or agent_config.DEFAULT_HOST,
            port=agent_config.DEFAULT_PORT if port is None else port,
            token=token,
            insecure_no_auth=insecure_no_auth,
            tls_cert=tls_cert,
            tls_key=tls_key,
            runtimes=runtimes,
            extra_runtimes=extra_runtime,
            cache_dir=cache_dir,
            cache_mb=cache_mb or agent_config.DEFAULT_CACHE_MB,
            max_message_mb=max_message_mb or agent_config.DEFAULT_MAX_MESSAGE_MB,
            cpus=cpus,
            job_timeout_s=job_timeout_s or agent_config.DEFAULT_JOB_TIMEOUT_S,
            job_log=job_log,
            name=name,
            benchmark_model_bin=benchmark_model_bin,
            adb_serial=adb,
            max_worker_mb=max_worker_mb,
            delegates=delegate,
            max_streams=max_streams or agent_config.DEFAULT_MAX_STREAMS,
            max_streams_per_client=max_streams_per_client or agent_config.DEFAULT_MAX_STREAMS_PER_CLIENT,
            stream_idle_s=agent_config.DEFAULT_STREAM_IDLE_S if stream_idle_s is None else stream_idle_s,
        )
        import logging

        logging.getLogger("agent").setLevel(logging.INFO)
        agent_cli.serve(config, auth_desc, echo)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    except RuntimeError as err:
        fail(str(err), EXIT_FAILED)


@agent_app.command("cert")
def cert_cmd(
    out_dir: Path = typer.Option(Path("."), "--out-dir", help="Folder for agent.crt and agent.key."),
    name: list[str] = typer.Option([], "--name", help="Host name or IP address clients dial (repeatable; "
                                   "default: this host's name, localhost, 127.0.0.1, ::1)."),
    days: int = typer.Option(825, help="Days the certificate stays valid."),
    force: bool = typer.Option(False, "--force", help="Replace an existing pair."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Make a self-signed TLS pair for an agent and print the fingerprint hosts pin."""
    from agent.certs import default_names, make_self_signed

    try:
        pair = make_self_signed(out_dir, name or default_names(), days=days, overwrite=force)
    except (ValueError, ImportError) as err:
        fail(str(err), EXIT_USAGE)
    except OSError as err:
        fail(f"cannot write the pair to {out_dir}: {err.strerror or err}", EXIT_FAILED)
    doc = {"cert": str(pair.cert), "key": str(pair.key), "sha256_fingerprint": pair.fingerprint,
           "names": list(pair.names), "not_after": pair.not_after}
    if json_out:
        emit_json(doc)
        return
    lines = [
        f"wrote {pair.cert} and {pair.key} (valid until {pair.not_after}) for {', '.join(pair.names)}",
        f"SHA-256 fingerprint: {pair.fingerprint}",
        f"agent: lutnas agent serve --host 0.0.0.0 --tls-cert {pair.cert} --tls-key {pair.key} --token-file TOKEN",
        f"hosts: copy {pair.cert.name} (check its fingerprint) and pass --tls-ca {pair.cert.name}",
    ]
    for line in lines:  # no emoji codes: a fingerprint's ":cd:" is not a CD
        err_console.print(literal(line), soft_wrap=True)


def _client_error_exit(err: Exception) -> NoReturn:
    from profiler.client import AgentAuthError, AgentJobError

    # The client's messages already name the agent and say what failed.
    if isinstance(err, AgentAuthError):
        hint = "" if "LUTNAS_TOKEN" in str(err) else " (check --token-file or LUTNAS_TOKEN)"  # the agent may say it
        fail(f"{err}{hint}", EXIT_USAGE)
    if isinstance(err, AgentJobError):
        fail(str(err), EXIT_USAGE if err.code in _BAD_INPUT_CODES else EXIT_FAILED)
    fail(str(err), EXIT_FAILED)


def _clock(runtime: str, options: dict[str, str]) -> str:
    """Which clock a timing was read from: the runtime reports it (onnxruntime), else it follows from the runtime."""
    if "clock" in options:
        return options["clock"]
    if runtime == "torch" and options.get("device", "").startswith("cuda"):
        return "cuda_event"
    if runtime == "benchmark_model":
        return "benchmark_model"
    return "wall"


_CLOCK_WORDS = {
    "thread_cpu": "thread CPU time (preemption excluded; --option clock=wall for wall time)",
    "wall": "wall clock",
    "cuda_event": "CUDA events",
    "benchmark_model": "benchmark_model's own timer",
}


def _fmt_ms(value: float) -> str:
    return f"{value:.4f}" if value < 1 else f"{value:.3f}"


def _device_row(address: str, info: Any) -> dict[str, Any]:
    from profiler.client import message_to_dict

    doc = message_to_dict(info)
    doc["address"] = address
    return doc


def _max_threads(row: dict) -> str:
    """How many threads a job may ask for: one per CPU the timing worker may use (``-``: unpinned, any)."""
    cpus = [c for c in (row.get("properties") or {}).get("timing_cpus", "").split(",") if c]
    return f"{len(cpus)} (CPUs {','.join(cpus)})" if cpus else "-"


def _governors(row: dict[str, Any]) -> str:
    names = sorted({c.get("governor", "") for c in (row.get("state") or {}).get("cpus", []) if c.get("governor")})
    return ",".join(names) or "-"


def _max_temp(row: dict[str, Any]) -> str:
    temps = [z.get("temp_c", 0.0) for z in (row.get("state") or {}).get("thermal", [])]
    return f"{max(temps):.1f}" if temps else "-"


def devices_cmd(
    addresses: list[str] = typer.Argument(None, help="Agents as HOST:PORT (or NAME=HOST:PORT); same as --agent.",
                                          show_default=False),
    agent: list[str] = typer.Option([], "--agent", help="Agent as [NAME=]HOST:PORT (repeatable)."),
    token_file: Path | None = typer.Option(None, help="File holding the bearer token (else $LUTNAS_TOKEN)."),
    tls_ca: Path | None = typer.Option(None, help="PEM CA or self-signed certificate to trust (enables TLS)."),
    connect_timeout_s: float = connect_timeout_option(),
    timeout_s: float | None = typer.Option(None, "--timeout-s", hidden=True),  # old spelling of --connect-timeout-s
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show device facts of one or more agents as one table."""
    from profiler.client import AgentClient, AgentError

    if timeout_s is not None:
        connect_timeout_s = timeout_s
    positive_number(connect_timeout_s, "--connect-timeout-s")
    texts = [*(addresses or []), *agent]
    if not texts:
        fail("give at least one agent: --agent [NAME=]HOST:PORT", EXIT_USAGE)
    token = read_token(token_file)
    specs = []
    for text in texts:
        try:
            specs.append(parse_agent_spec(text))
        except ValueError as err:
            fail(str(err), EXIT_USAGE)
    rows = []
    failures = []
    for spec in specs:
        try:
            with AgentClient(spec.address, token=token, tls_ca=tls_ca, timeout_s=max(connect_timeout_s, 10.0),
                             retry_s=connect_timeout_s) as client:
                rows.append(_device_row(spec.address, client.device_info()))
        except AgentError as err:
            if len(specs) == 1:
                _client_error_exit(err)
            failures.append({"address": spec.address, "error": str(err), "code": err.code})
    if json_out:
        emit_json({"devices": rows, "errors": failures})
    else:
        # One column per device: ten facts side by side would not fit a terminal.
        table = Table(title="lutnas agents")
        table.add_column("")
        for row in rows:
            table.add_column(literal(row["address"]), overflow="fold")
        facts: list[tuple[str, list[str]]] = [
            ("name", [r.get("name", "") for r in rows]),
            ("arch", [r.get("machine", "") or "-" for r in rows]),
            ("board", [r.get("board", "") or "-" for r in rows]),
            ("CPU", [r.get("cpu_model", "") or "-" for r in rows]),
            ("cores", [str(r.get("cpu_cores", "")) for r in rows]),
            ("int8 dot", [(r.get("properties") or {}).get("int8_dot_product", "") or "-" for r in rows]),
            ("RAM MB", [str(r.get("ram_mb", "")) for r in rows]),
            ("OS", [r.get("os", "") for r in rows]),
            ("pinned CPUs", [",".join(map(str, r.get("pinned_cpus", []))) or "-" for r in rows]),
            ("threads up to", [_max_threads(r) for r in rows]),
            ("governor", [_governors(r) for r in rows]),
            ("max temp °C", [_max_temp(r) for r in rows]),
            (
                "runtimes",
                [
                    ", ".join(f"{x['name']} {x.get('version', '')}".strip() for x in r.get("runtimes", []) if x.get("available"))
                    for r in rows
                ],
            ),
            ("accelerators", [", ".join(a.get("name", "") for a in r.get("accelerators", [])) or "-" for r in rows]),
            (
                "agent",
                [
                    f"{r.get('agent_version', '')} (auth {'on' if r.get('auth_required') else 'off'}, tls {'on' if r.get('tls') else 'off'})"
                    for r in rows
                ],
            ),
        ]
        for label, values in facts:  # every fact is the agent's word: shown as it reads, never as markup
            table.add_row(label, *map(literal, values))
        err_console.print(table)
        for f in failures:
            err_console.print(literal(("error:", "bold red"), " ", f["error"]), soft_wrap=True)
    if failures:
        raise typer.Exit(EXIT_FAILED)


def time_cmd(
    model_file: Path = typer.Argument(..., help="Model file: .onnx, .tflite, .pt (TorchScript) or .pt2 (torch.export)."),
    agent: str = typer.Option(..., "--agent", help="Agent as [NAME=]HOST:PORT; the result names the device NAME, "
                              "else the name the agent reports (as in profile and validate)."),
    runtime: str | None = typer.Option(None, help="Runtime on the agent (default: from the file extension)."),
    threads: int = typer.Option(1, help="Runtime threads."),
    shape: list[str] = typer.Option([], "--shape", help="Input shape as NAME=1x3x224x224 or 1x3x224x224 (repeatable, by position)."),
    option: list[str] = typer.Option([], "--option", help="Runtime option KEY=VALUE (repeatable), e.g. device=cuda."),
    samples: bool = typer.Option(False, "--samples", help="Include every timed sample."),
    token_file: Path | None = typer.Option(None, help="File holding the bearer token (else $LUTNAS_TOKEN)."),
    tls_ca: Path | None = typer.Option(None, help="PEM CA or self-signed certificate to trust (enables TLS)."),
    connect_timeout_s: float = connect_timeout_option(),
    timeout_s: float | None = typer.Option(None, "--timeout-s", hidden=True),  # old spelling of --connect-timeout-s
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Time any model file on a device and print its latency statistics."""
    from profiler.client import AgentClient, AgentError, message_to_dict, runtime_for_path

    if timeout_s is not None:
        connect_timeout_s = timeout_s
    positive_number(connect_timeout_s, "--connect-timeout-s")
    try:
        spec = parse_agent_spec(agent)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    try:
        chosen_runtime = runtime or runtime_for_path(model_file)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    fmt = {".pt": "torchscript", ".pt2": "pt2"}.get(model_file.suffix.lower(), "") if chosen_runtime == "torch" else ""
    inputs = []
    for text in shape:
        name, sep, dims = text.rpartition("=")
        try:
            inputs.append((name, [int(d) for d in dims.lower().split("x")], ""))
        except ValueError:
            fail(f"--shape expects NAME=1x3x224x224 or 1x3x224x224, got {text!r}", EXIT_USAGE)
    try:
        options = parse_options(option)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    try:
        model = model_file.read_bytes()
    except OSError as err:
        fail(f"cannot read model file {model_file}: {err.strerror}", EXIT_USAGE)
    token = read_token(token_file)
    try:
        with AgentClient(spec.address, token=token, tls_ca=tls_ca, retry_s=connect_timeout_s) as client:
            spec = agent_device_name(agent, spec, client.device_info().name, "the result names it {name!r}")
            with err_console.status(literal(f"timing {model_file.name} on {spec.name}..."), spinner="dots"):
                result = client.time_model(
                    model, chosen_runtime, format=fmt, threads=threads, inputs=inputs, options=options, return_samples=samples
                )
    except AgentError as err:
        _client_error_exit(err)
    except OSError as err:
        fail(f"cannot read --tls-ca {tls_ca}: {err.strerror}", EXIT_USAGE)
    stats = message_to_dict(result.stats)
    doc = {
        "device": spec.name,
        "address": spec.address,
        "model": str(model_file),
        "model_sha256": result.model_sha256,
        "runtime": result.runtime,
        "runtime_version": result.runtime_version,
        "threads": result.threads,
        "options": dict(result.options),
        "clock": _clock(result.runtime, dict(result.options)),
        **stats,
        "stop_reason": result.stop_reason,
        "warmup_runs": result.warmup_runs,
        "load_ms": result.load_ms,
        "wall_s": result.wall_s,
        "before": message_to_dict(result.before),
        "after": message_to_dict(result.after),
        "agent_version": result.agent_version,
    }
    if samples:
        doc["samples_ms"] = list(result.samples_ms)
    if json_out:
        emit_json(doc)
        return
    # Two columns fit narrow terminals (phones over ssh) where ten columns would be cut.
    table = Table(title=literal(f"{model_file.name} on {spec.name}"))
    table.add_column("statistic")
    table.add_column("value", justify="right")
    s = result.stats
    rows = [
        ("median ms", _fmt_ms(s.median_ms)),
        ("mean ms", _fmt_ms(s.mean_ms)),
        ("std ms", _fmt_ms(s.std_ms)),
        ("min ms", _fmt_ms(s.min_ms)),
        ("p10 ms", _fmt_ms(s.p10_ms)),
        ("p90 ms", _fmt_ms(s.p90_ms)),
        ("max ms", _fmt_ms(s.max_ms)),
        ("n", str(s.n)),
        ("95% CI of median", f"±{100 * s.rel_ci_median:.2f}%"),
        ("stopped by", result.stop_reason),
        ("runtime", f"{result.runtime} {result.runtime_version}, {result.threads} thread{'s' if result.threads != 1 else ''}"),
        ("clock", _CLOCK_WORDS.get(doc["clock"], doc["clock"])),
    ]
    for key, value in rows:  # the runtime's name and version and the stop reason are the agent's word
        table.add_row(key, literal(value))
    err_console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``agent serve``, ``devices`` and ``time`` to ``app``."""
    app.add_typer(agent_app, name="agent")
    app.command("devices")(devices_cmd)
    app.command("time")(time_cmd)
