"""Agent settings: one frozen dataclass and the defaults both command lines import.

Nothing here touches the network or the runtimes; ``python -m agent`` and ``lutnas agent serve``
build an :class:`AgentConfig` from their flags and hand it to :func:`agent.server.start_server`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "AGENT_VERSION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_MAX_MESSAGE_MB",
    "DEFAULT_CACHE_MB",
    "DEFAULT_JOB_TIMEOUT_S",
    "MAX_JOB_TIMEOUT_S",
    "DEFAULT_MAX_INPUT_MB",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_MAX_STREAMS_PER_CLIENT",
    "DEFAULT_STREAM_IDLE_S",
    "default_max_worker_mb",
    "is_loopback",
    "parse_delegates",
    "AgentConfig",
    "absolute_paths",
    "default_cache_dir",
    "default_token_path",
    "parse_cpus",
    "cpu_preference",
    "spare_cpus",
    "pick_timing_cpu",
    "allowed_cpus",
    "CAN_PIN",
]

# macOS and some other systems have no CPU affinity API; the agent then runs unpinned.
CAN_PIN = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (all of them where there is no affinity API)."""
    if CAN_PIN:
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _agent_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lutnas")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


AGENT_VERSION = _agent_version()
DEFAULT_HOST = "127.0.0.1"  # never listen beyond loopback unless the operator asks
DEFAULT_PORT = 50051
# One gRPC message. Every block fits, and whole fp32 MobileNetV3 and ProxylessNAS nets (41 and 30 MB at their
# largest); a whole ResNet50 (184 MB at width 1.0, expand 0.35, full depth) needs --max-message-mb 192. Not the
# default: a message in flight costs the agent about 3x its size and the worker about 4x (measured with that
# ResNet50: 620 and 770 MB peak), per open stream, on boards with 1-4 GB; the host names the flag when needed.
DEFAULT_MAX_MESSAGE_MB = 64
DEFAULT_CACHE_MB = 2048
DEFAULT_JOB_TIMEOUT_S = 300.0
MAX_JOB_TIMEOUT_S = 3600.0  # a job may ask for less, never more
DEFAULT_MAX_INPUT_MB = 256  # random input tensors a job may make the agent allocate
DEFAULT_MAX_STREAMS = 16  # open Benchmark streams, all clients together; a host needs one per agent
DEFAULT_MAX_STREAMS_PER_CLIENT = 4  # open Benchmark streams from one client address
DEFAULT_STREAM_IDLE_S = 600.0  # a stream that sends no job for this long is closed


def default_max_worker_mb() -> int:
    """Half of this machine's RAM: a hostile model hits the cap long before the device swaps."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0  # unknown RAM (no sysconf): no cap
    return max(256, total // 2 >> 20)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the agent on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


def parse_delegates(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``--delegate NAME=PATH`` flags into the operator's delegate allowlist.

    Raises:
        ValueError: an item is not NAME=PATH with an absolute path to a file, or a name repeats.
    """
    table: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--delegate expects NAME=PATH (e.g. gpu=/usr/lib/libgpu_delegate.so), got {item!r}")
        if name in table:
            raise ValueError(f"--delegate {name!r} is given twice")
        if not Path(path).is_absolute() or not Path(path).is_file():
            raise ValueError(f"--delegate {name}={path}: not an absolute path to a file")
        table[name] = path
    return table


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lutnas/agent-models`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lutnas" / "agent-models"


def default_token_path() -> Path:
    """Where a generated token is written: ``$XDG_CONFIG_HOME/lutnas/agent.token``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lutnas" / "agent.token"


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def cpu_preference() -> list[int]:
    """The CPUs this process may run on, best timing CPU first.

    Highest maximum frequency first (big cores on big.LITTLE boards), the highest-numbered first on
    ties: CPU 0 takes most interrupts.
    """
    return sorted(
        allowed_cpus(),
        key=lambda cpu: (_read_int(Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq")), cpu),
        reverse=True,
    )


def pick_timing_cpu() -> int:
    """The CPU the timing worker pins to by default: the first of :func:`cpu_preference`."""
    return cpu_preference()[0]


def spare_cpus(text: str) -> tuple[int, ...]:
    """The CPUs ``--cpus`` lets a job with more threads than pinned CPUs add, best first.

    Only ``auto`` has any: it pins one core, and a job asking for N threads gets the N best cores
    (N threads time-sliced on one core time nothing that deploys). An explicit list is the operator's
    whole set, and ``all`` pins nothing.
    """
    if not CAN_PIN or text.strip().lower() not in ("auto", ""):
        return ()
    return tuple(cpu_preference()[1:])


def parse_cpus(text: str) -> tuple[int, ...] | None:
    """Parse ``--cpus``: ``auto`` (one core, see :func:`pick_timing_cpu`; jobs with more threads add
    :func:`spare_cpus`), ``all`` (no pinning) or a list like ``2,4-7``.

    Returns:
        The CPU indices, or None for no pinning.

    Raises:
        ValueError: the text is none of the above or names a CPU this process may not use.
    """
    text = text.strip().lower()
    if text == "all":
        return None
    if not CAN_PIN:
        if text in ("auto", ""):
            return None
        raise ValueError(f"--cpus {text!r}: this OS has no CPU affinity API; use --cpus all")
    if text in ("auto", ""):
        return (pick_timing_cpu(),)
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 0 or last < first:
                raise ValueError(part)
            cpus.update(range(first, last + 1))
    except ValueError:
        raise ValueError(f"--cpus expects auto, all or a list like 2,4-7; got {text!r}") from None
    allowed = allowed_cpus()
    missing = sorted(cpus - allowed)
    if missing:
        raise ValueError(f"--cpus {text!r} names CPUs {missing} outside this process's set {sorted(allowed)}")
    return tuple(sorted(cpus))


@dataclass(frozen=True)
class AgentConfig:
    """Everything a running agent needs to know; built once from flags, never changed."""

    host: str = DEFAULT_HOST  # interface to bind
    port: int = DEFAULT_PORT  # 0 picks a free port
    token: str | None = None  # bearer token; None only with insecure_no_auth
    insecure_no_auth: bool = False  # accept calls without a token
    tls_cert: Path | None = None  # PEM certificate chain; TLS when set together with tls_key
    tls_key: Path | None = None  # PEM private key
    runtimes: tuple[str, ...] | None = None  # runtimes to offer; None: every built-in that is installed
    extra_runtimes: tuple[str, ...] = ()  # "module:attr" runtime classes the operator plugs in
    cache_dir: Path = field(default_factory=default_cache_dir)  # content-addressed model blobs
    cache_mb: int = DEFAULT_CACHE_MB  # LRU size cap of the cache
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB  # largest gRPC message in either direction
    max_input_mb: int = DEFAULT_MAX_INPUT_MB  # largest total of a job's input tensors
    cpus: tuple[int, ...] | None = None  # CPUs the timing worker is pinned to; None: no pinning
    spare_cpus: tuple[int, ...] = ()  # CPUs a job with more threads than ``cpus`` adds, in order (--cpus auto)
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S  # deadline of a job that names none
    job_log: Path | None = None  # append one JSON line per completed timing job
    name: str | None = None  # device name reported by GetDeviceInfo; None: the hostname
    benchmark_model_bin: Path | None = None  # TFLite benchmark_model binary; enables that runtime
    adb_serial: str | None = None  # time this adb-attached phone (agent.adb); benchmark_model_bin is a path on it
    reflection: bool = True  # gRPC server reflection
    max_worker_mb: int = 0  # memory cap of the timing worker (MB); 0: none
    delegates: tuple[tuple[str, str], ...] = ()  # operator allowlist of TFLite delegates: (name, path)
    max_streams: int = DEFAULT_MAX_STREAMS  # open Benchmark streams, all clients together
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT  # open Benchmark streams per client address
    stream_idle_s: float = DEFAULT_STREAM_IDLE_S  # close a stream that sends no job for this long

    @property
    def tls(self) -> bool:
        """Whether the agent serves TLS."""
        return self.tls_cert is not None and self.tls_key is not None


def absolute_paths(config: AgentConfig) -> AgentConfig:
    """``config`` with every path on this machine made absolute against the current directory, once, at start.

    The worker runs in an empty directory of its own: a relative ``--cache-dir cache`` or
    ``--benchmark-model-bin ./benchmark_model`` would name nothing there. With ``--adb`` the binary is
    a path on the phone and stays as given.
    """

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else Path(os.path.abspath(os.path.expanduser(path)))

    return replace(
        config,
        cache_dir=absolute(config.cache_dir),
        tls_cert=absolute(config.tls_cert),
        tls_key=absolute(config.tls_key),
        job_log=absolute(config.job_log),
        benchmark_model_bin=config.benchmark_model_bin if config.adb_serial else absolute(config.benchmark_model_bin),
    )
