"""Starting an agent from flags: shared by ``python -m agent`` and ``lutnas agent serve``.

``python -m agent`` uses argparse so a board needs nothing beyond ``lutnas[agent]``;
``lutnas agent serve`` exposes the same flags with typer and calls :func:`serve` too.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent._logtext import EscapingFormatter
from agent.adb import AdbDevice, AdbError, connect
from agent.auth import generate_token, write_token_file
from agent.device import big_cores
from agent.config import (
    CAN_PIN,
    DEFAULT_CACHE_MB,
    DEFAULT_HOST,
    DEFAULT_JOB_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_MB,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    DEFAULT_PORT,
    DEFAULT_STREAM_IDLE_S,
    AgentConfig,
    default_cache_dir,
    default_max_worker_mb,
    default_token_path,
    parse_cpus,
    parse_delegates,
    spare_cpus,
)

__all__ = ["resolve_token", "build_config", "serve", "build_parser", "main", "TOKEN_ENV"]

log = logging.getLogger(__name__)
TOKEN_ENV = "LUTNAS_TOKEN"
_SIGNAL_POLL_S = 0.2  # how soon the agent notices SIGINT/SIGTERM at the latest


def resolve_token(token_file: Path | None, insecure_no_auth: bool, echo: Callable[[str], None]) -> tuple[str | None, str]:
    """The token to require and a description of where it came from.

    Order: ``--token-file``, then ``$LUTNAS_TOKEN``, else a new token written to
    :func:`~agent.config.default_token_path` (the path is echoed so the operator can copy it).

    Raises:
        ValueError: the token file cannot be read or is empty.
    """
    if insecure_no_auth:
        return None, "none (--insecure-no-auth)"
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as fh:
                mode = os.fstat(fh.fileno()).st_mode
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read --token-file {token_file}: {getattr(err, 'strerror', None) or err}") from err
        if not token:
            raise ValueError(f"--token-file {token_file} is empty")
        if mode & 0o077:
            # As ssh does for private keys: whoever can read this file can time models here.
            log.warning("--token-file %s has mode %04o: other users may read or change the token; run chmod 600 %s",
                        token_file, stat.S_IMODE(mode), token_file)
        return token, f"token (file {token_file})"
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token, f"token (${TOKEN_ENV})"
    token = generate_token()
    path = write_token_file(default_token_path(), token)
    echo(f"generated a token; wrote it to {path} (pass it to hosts with --token-file or ${TOKEN_ENV})")
    return token, f"token (file {path})"


def build_config(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None,
    insecure_no_auth: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    runtimes: str | None = None,
    extra_runtimes: Sequence[str] = (),
    cache_dir: Path | None = None,
    cache_mb: int = DEFAULT_CACHE_MB,
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
    cpus: str = "auto",
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S,
    job_log: Path | None = None,
    name: str | None = None,
    benchmark_model_bin: Path | None = None,
    max_worker_mb: int | None = None,
    delegates: Sequence[str] = (),
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT,
    stream_idle_s: float = DEFAULT_STREAM_IDLE_S,
    adb_serial: str | None = None,
) -> AgentConfig:
    """An :class:`AgentConfig` from flag values, checking rules that span flags.

    Raises:
        ValueError: a bad flag value, naming the flag.
    """
    if not 0 <= port < 65536:
        raise ValueError(f"--port must be in 0..65535, got {port}")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if max_message_mb < 1:
        raise ValueError(f"--max-message-mb must be >= 1, got {max_message_mb}")
    if cache_mb < 1:
        raise ValueError(f"--cache-mb must be >= 1, got {cache_mb}")
    if max_worker_mb is not None and max_worker_mb < 0:
        raise ValueError(f"--max-worker-mb must be >= 0 (0: no cap), got {max_worker_mb}")
    for flag, value in (("--max-streams", max_streams), ("--max-streams-per-client", max_streams_per_client)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    for flag, seconds in (("--stream-idle-s", stream_idle_s), ("--job-timeout-s", job_timeout_s)):
        if not 0 < seconds < float("inf"):  # nan fails this too
            raise ValueError(f"{flag} must be a finite number > 0, got {seconds}")
    names = tuple(n.strip() for n in runtimes.split(",") if n.strip()) if runtimes else None
    if adb_serial:
        names = _check_adb(adb_serial, benchmark_model_bin, names)
    elif cpus.strip().lower() in ("auto", "") and CAN_PIN and not big_cores():
        log.warning("no cpufreq or cpu_capacity files here: --cpus auto pins the timing worker to the highest-numbered CPU")
    return AgentConfig(
        host=host,
        port=port,
        token=token,
        insecure_no_auth=insecure_no_auth,
        tls_cert=tls_cert,
        tls_key=tls_key,
        runtimes=names,
        extra_runtimes=tuple(extra_runtimes),
        cache_dir=cache_dir or default_cache_dir(),
        cache_mb=cache_mb,
        max_message_mb=max_message_mb,
        cpus=parse_cpus(cpus),
        spare_cpus=spare_cpus(cpus),
        job_timeout_s=job_timeout_s,
        job_log=job_log,
        name=name,
        benchmark_model_bin=benchmark_model_bin,
        max_worker_mb=default_max_worker_mb() if max_worker_mb is None else max_worker_mb,
        delegates=tuple(parse_delegates(tuple(delegates)).items()),
        max_streams=max_streams,
        max_streams_per_client=max_streams_per_client,
        stream_idle_s=stream_idle_s,
        adb_serial=adb_serial,
    )


def _check_adb(serial: str, binary: Path | None, runtimes: tuple[str, ...] | None) -> tuple[str, ...]:
    """The runtimes an adb agent offers (benchmark_model on the phone); warns about what will be missing.

    Raises:
        ValueError: no binary path, other runtimes asked for, adb missing or the phone unreachable.
    """
    if binary is None:
        raise ValueError("--adb needs --benchmark-model-bin PATH_ON_PHONE (e.g. /data/local/tmp/benchmark_model)")
    if runtimes and set(runtimes) != {"benchmark_model"}:
        raise ValueError(f"--adb times on the phone with benchmark_model only; --runtimes {','.join(runtimes)} names others")
    _, big = connect(serial)
    if not big:
        log.warning("phone %s exposes no cpufreq or cpu_capacity; benchmark_model runs unpinned", serial)
    try:
        present = AdbDevice(serial).is_executable(str(binary))
    except AdbError as err:
        raise ValueError(str(err)) from err
    if not present:
        log.warning("no executable %s on phone %s: the agent serves device facts only; adb push benchmark_model there", binary, serial)
    return ("benchmark_model",)


def serve(config: AgentConfig, auth_desc: str, echo: Callable[[str], None]) -> None:
    """Start the agent, echo one ready line, and serve until SIGINT/SIGTERM.

    Raises:
        ValueError, RuntimeError: from :func:`agent.server.start_server`.
    """
    from agent.server import start_server

    _check_port_free(config.host, config.port)
    running = start_server(config)
    _keep_off_timing_cpus(running.supervisor.worker_cpus)
    offered = ",".join(sorted(running.servicer.offered)) or "none"
    cpus = ",".join(map(str, running.supervisor.worker_cpus)) or "all"
    received: list[int] = []

    def _on_signal(signum: int, _frame: object) -> None:
        received.append(signum)  # no lock taken here: the handler may run inside any code of the main thread

    # The handlers are in place before the ready line, so a Ctrl-C right after it still stops the server.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        echo(
            f"lutnas agent ready address={running.address} runtimes={offered} auth={auth_desc} tls={'on' if config.tls else 'off'} cpus={cpus}"
        )
        # A timed sleep, not an endless Event.wait: a signal the kernel hands to one of gRPC's threads does not
        # wake the main thread, whose Python handler then runs only once it wakes for something else.
        while not received:
            time.sleep(_SIGNAL_POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        running.stop()


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, in one line, before the worker starts (gRPC would log its own
    bind errors first)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the server's own bind reports a name it cannot resolve
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed agent's TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise RuntimeError(f"port {port} on {host} is in use (another agent?): stop it, pick another "
                                   "--port, or --port 0 for a free one") from None
            raise RuntimeError(f"cannot bind {host}:{port}: {err.strerror or err}") from None


def _keep_off_timing_cpus(timing_cpus: Sequence[int]) -> None:
    """Move this (server) process off the worker's CPUs, when others exist.

    gRPC threads waking on the timing core would show up as noise in the timings.
    """
    if not CAN_PIN:
        return
    allowed = os.sched_getaffinity(0)
    rest = allowed - set(timing_cpus)
    if timing_cpus and rest:
        os.sched_setaffinity(0, rest)
        log.info("agent server runs on CPUs %s, the timing worker on %s", sorted(rest), sorted(timing_cpus))


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m agent`` (the same as ``lutnas agent serve``)."""
    p = argparse.ArgumentParser(prog="python -m agent", description="Serve the lutnas timing agent on this device.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port; 0 picks a free one (default {DEFAULT_PORT})")
    p.add_argument("--token-file", type=Path, help=f"file holding the bearer token (else ${TOKEN_ENV}, else generated)")
    p.add_argument("--insecure-no-auth", action="store_true", help="accept calls without a token (loopback binds only)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    p.add_argument("--runtimes", help="comma-separated runtimes to offer (default: every installed one)")
    p.add_argument("--extra-runtime", action="append", default=[], metavar="MODULE:CLASS", help="plug in a runtime class (repeatable)")
    p.add_argument("--cache-dir", type=Path, help="model blob cache directory")
    p.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_MB, help=f"cache size cap (default {DEFAULT_CACHE_MB})")
    p.add_argument(
        "--max-message-mb", type=int, default=DEFAULT_MAX_MESSAGE_MB, help=f"largest gRPC message (default {DEFAULT_MAX_MESSAGE_MB})"
    )
    p.add_argument("--cpus", default="auto", help="pin the timing worker: auto (the fastest core; a job with N threads gets the N fastest), all, or a list like 4-7")
    p.add_argument("--job-timeout-s", type=float, default=DEFAULT_JOB_TIMEOUT_S, help="deadline of a job that names none")
    p.add_argument("--job-log", type=Path, help="append one JSON line per completed timing job")
    p.add_argument("--name", help="device name to report (default: hostname)")
    p.add_argument("--benchmark-model-bin", type=Path, help="TFLite benchmark_model binary (a path on the phone with --adb)")
    p.add_argument("--adb", metavar="SERIAL", help="time the adb-attached phone SERIAL with benchmark_model (agent on this host)")
    p.add_argument("--max-worker-mb", type=int, help="memory cap of the timing worker; a job over it fails (default: half the RAM; 0: none)")
    p.add_argument("--delegate", action="append", default=[], metavar="NAME=PATH",
                   help="allow jobs to use this TFLite delegate by NAME (repeatable); jobs never name paths")
    p.add_argument("--max-streams", type=int, default=DEFAULT_MAX_STREAMS, help=f"open Benchmark streams in all (default {DEFAULT_MAX_STREAMS})")
    p.add_argument("--max-streams-per-client", type=int, default=DEFAULT_MAX_STREAMS_PER_CLIENT,
                   help=f"open Benchmark streams per client address (default {DEFAULT_MAX_STREAMS_PER_CLIENT})")
    p.add_argument("--stream-idle-s", type=float, default=DEFAULT_STREAM_IDLE_S,
                   help=f"close a stream that sends no job for this long (default {DEFAULT_STREAM_IDLE_S:g})")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m agent``; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])

    def echo(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        token, auth_desc = resolve_token(args.token_file, args.insecure_no_auth, echo)
        config = build_config(
            host=args.host,
            port=args.port,
            token=token,
            insecure_no_auth=args.insecure_no_auth,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            runtimes=args.runtimes,
            extra_runtimes=args.extra_runtime,
            cache_dir=args.cache_dir,
            cache_mb=args.cache_mb,
            max_message_mb=args.max_message_mb,
            cpus=args.cpus,
            job_timeout_s=args.job_timeout_s,
            job_log=args.job_log,
            name=args.name,
            benchmark_model_bin=args.benchmark_model_bin,
            max_worker_mb=args.max_worker_mb,
            delegates=args.delegate,
            max_streams=args.max_streams,
            max_streams_per_client=args.max_streams_per_client,
            stream_idle_s=args.stream_idle_s,
            adb_serial=args.adb,
        )
        serve(config, auth_desc, echo)
    except KeyboardInterrupt:
        return 130  # Ctrl-C before the signal handlers were in place: stop quietly
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except RuntimeError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    return 0
