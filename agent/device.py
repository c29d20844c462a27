"""Device facts (read once) and device state (read before and after every job).

Everything comes from files and small commands that exist on Linux boards and Android:
/proc/cpuinfo, /proc/meminfo, /proc/device-tree/model, /sys/devices/system/cpu/*/cpufreq,
/sys/class/thermal, ``getprop`` and ``nvidia-smi`` when present. A fact that cannot be read is
left empty rather than failing the agent.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.config import allowed_cpus

__all__ = ["read_device_facts", "read_device_state", "ANDROID_PROPS"]

ANDROID_PROPS = (
    "ro.product.model",
    "ro.product.manufacturer",
    "ro.soc.model",
    "ro.soc.manufacturer",
    "ro.board.platform",
    "ro.hardware",
    "ro.build.version.release",
)
_CMD_TIMEOUT_S = 5.0


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return ""


def _read_int(path: str | Path) -> int:
    try:
        return int(_read(path))
    except ValueError:
        return 0


def _run(args: list[str]) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo")
    for key in ("model name", "Hardware", "Model", "Processor", "cpu model"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor()


def _ram_mb() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def _os_name() -> str:
    pretty = ""
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip('"')
    base = f"{platform.system()} {platform.release()}"
    return f"{base} ({pretty})" if pretty else base


def _android_props() -> dict[str, str]:
    if not shutil.which("getprop"):
        return {}
    props = {}
    for key in ANDROID_PROPS:
        value = _run(["getprop", key])
        if value:
            props[key] = value
    return props


def _accelerators(board: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if shutil.which("nvidia-smi"):
        text = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"])
        for line in text.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 3:
                mem = int(float(parts[1])) if parts[1].replace(".", "", 1).isdigit() else 0
                out.append({"name": parts[0], "kind": "cuda", "memory_mb": mem, "driver": parts[2]})
    if not out and "jetson" in board.lower():
        # Jetson's integrated GPU has no nvidia-smi query; the board name is the best label.
        out.append({"name": board, "kind": "cuda", "memory_mb": 0, "driver": _read("/etc/nv_tegra_release")[:60]})
    return out


def read_device_facts() -> dict[str, Any]:
    """Static facts: names, CPU, RAM, OS, board, Android properties and accelerators."""
    props = _android_props()
    board = _read("/proc/device-tree/model") or props.get("ro.product.model", "")
    return {
        "hostname": socket.gethostname(),
        "os": _os_name(),
        "machine": platform.machine(),
        "board": board,
        "cpu_model": _cpu_model() or props.get("ro.soc.model", ""),
        "cpu_cores": os.cpu_count() or 0,
        "ram_mb": _ram_mb(),
        "properties": props,
        "accelerators": _accelerators(board),
        "python_version": sys.version.split()[0],
    }


def read_device_state(cpus: Iterable[int] | None = None) -> dict[str, Any]:
    """Temperatures of every thermal zone, and governor/frequencies of ``cpus`` (all when None)."""
    thermal = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        milli_c = _read_int(zone / "temp")
        if milli_c:
            thermal.append({"zone": zone.name, "type": _read(zone / "type"), "temp_c": milli_c / 1000.0})
    indices = sorted(cpus) if cpus is not None else sorted(allowed_cpus())
    cpu_states = []
    for cpu in indices:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq")
        cpu_states.append(
            {
                "cpu": cpu,
                "governor": _read(base / "scaling_governor"),
                "cur_freq_khz": _read_int(base / "scaling_cur_freq"),
                "min_freq_khz": _read_int(base / "scaling_min_freq"),
                "max_freq_khz": _read_int(base / "scaling_max_freq"),
            }
        )
    return {"thermal": thermal, "cpus": cpu_states, "unix_time_s": time.time()}
