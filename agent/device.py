"""Device facts (read once) and device state (read before and after every job).

Everything comes from files and small commands that exist on Linux boards and Android:
/proc/cpuinfo, /proc/meminfo, the device-tree model, /sys/devices/system/cpu/*/cpufreq,
cpu_capacity, /sys/class/thermal, ``getprop`` and ``nvidia-smi`` when present. A fact that cannot
be read is left empty rather than failing the agent.

The files are read through a :class:`DeviceFiles` source: :class:`LocalFiles` reads this machine
(or a recorded board tree under another root, as the tests do); the adb bridge reads a phone.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.config import allowed_cpus

__all__ = [
    "ANDROID_PROPS",
    "INT8_DOT_FLAGS",
    "DeviceFiles",
    "LocalFiles",
    "parse_getprop",
    "big_cores",
    "cpu_max_freqs_khz",
    "int8_dot_product",
    "read_device_facts",
    "read_device_state",
]

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
# The kernel shows the model at /proc/device-tree/model, a link to the sysfs copy; either may be missing.
_DT_MODEL = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
_CPU_SYSFS = "/sys/devices/system/cpu"
_THERMAL = "/sys/class/thermal/thermal_zone*"
_MIN_REAL_TEMP_C = -100.0  # disabled sensors report -256 C (Jetson's cv*-thermal zones)
# Arm's CPU part numbers (``CPU part`` in /proc/cpuinfo) of the cores found on boards and phones.
_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}  # fmt: skip
# Int8 dot-product instructions, as /proc/cpuinfo names them (x86 ``flags``, Arm ``Features``). Without
# one, int8 kernels multiply-add through 16-bit intermediates (onnxruntime's u8s8 kernels on AVX2-only x86
# add pairs of products in 16 bits and can saturate) or widen step by step, so an int8 LUT of such a CPU
# says little about a CPU with them; an int8 LUT records which it was timed on.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


class DeviceFiles(Protocol):
    """Where a device's files and properties come from."""

    def read_all(self, patterns: Sequence[str]) -> dict[str, str]:
        """Absolute path -> stripped text of every readable file matching the glob ``patterns``."""
        ...

    def getprop(self) -> str:
        """The output of Android's ``getprop`` (``[key]: [value]`` lines); "" elsewhere."""
        ...

    def system(self) -> dict[str, str]:
        """``hostname``, ``os``, ``machine`` (``uname -m``) of the device."""
        ...


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return ""


def _run(args: list[str]) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


@dataclass(frozen=True)
class LocalFiles:
    """Files under ``root``: ``/`` is this machine; a recorded board tree keeps ``getprop``'s output in ``getprop.txt``."""

    root: Path = Path("/")

    def read_all(self, patterns: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for pattern in patterns:
            for path in sorted(self.root.glob(pattern.lstrip("/"))):
                text = _read(path) if path.is_file() else ""
                if text:
                    out["/" + path.relative_to(self.root).as_posix()] = text
        return out

    def getprop(self) -> str:
        if self.root != Path("/"):
            return _read(self.root / "getprop.txt")
        return _run(["getprop"]) if shutil.which("getprop") else ""

    def system(self) -> dict[str, str]:
        pretty = ""
        for line in _read(self.root / "etc/os-release").splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"')
        base = f"{platform.system()} {platform.release()}"
        return {"hostname": socket.gethostname(), "os": f"{base} ({pretty})" if pretty else base, "machine": platform.machine()}


def parse_getprop(text: str) -> dict[str, str]:
    """``[ro.product.model]: [Pixel 7]`` lines -> ``{"ro.product.model": "Pixel 7"}`` (empty values dropped)."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("]: [")
        if sep and key.startswith("[") and value.endswith("]") and value[:-1]:
            props[key[1:]] = value[:-1]
    return props


def _cpuinfo_fields(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


def _core_summary(fields: list[tuple[str, str]]) -> str:
    """``4x Cortex-A55 + 2x Cortex-A78 + 2x Cortex-X1`` from the ``CPU part`` lines, in CPU order."""
    groups: list[list[Any]] = []
    for name, value in fields:
        if name == "CPU part":
            core = _ARM_PARTS.get(value.lower(), f"Arm part {value}")
            if groups and groups[-1][1] == core:
                groups[-1][0] += 1
            else:
                groups.append([1, core])
    return " + ".join(f"{n}x {core}" for n, core in groups)


def _cpu_model(cpuinfo: str, props: dict[str, str]) -> str:
    """The SoC (Android's ``ro.soc.model`` or cpuinfo's ``Hardware``) and the cores, or the x86 model name."""
    fields = _cpuinfo_fields(cpuinfo)
    first = {}
    for name, value in fields:
        first.setdefault(name, value)
    cores = _core_summary(fields)
    soc = props.get("ro.soc.model") or first.get("Hardware", "")
    if cores:
        return f"{soc}: {cores}" if soc else cores
    return first.get("model name") or first.get("Processor") or first.get("cpu model") or soc or platform.processor()


def int8_dot_product(cpuinfo: str) -> str:
    """The int8 dot-product instructions the first CPU lists (``asimddp,i8mm``), ``none``, or ``""`` when
    cpuinfo lists no flags at all (unknown)."""
    flags = next((value.split() for name, value in _cpuinfo_fields(cpuinfo) if name in ("flags", "Features")), None)
    if flags is None:
        return ""
    return ",".join(f for f in INT8_DOT_FLAGS if f in flags) or "none"


def _cpu_count(files: dict[str, str], cpuinfo: str) -> int:
    try:
        return len(_parse_cpu_list(files.get(f"{_CPU_SYSFS}/present", "")))
    except ValueError:  # no sysfs: count cpuinfo's processors
        return sum(1 for name, _ in _cpuinfo_fields(cpuinfo) if name == "processor")


def _parse_cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format, ``0-3,6``."""
    cpus: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        cpus.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return cpus


def _ram_mb(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def _accelerators(board: str, nv_release: str, local: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if local and shutil.which("nvidia-smi"):
        text = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"])
        for line in text.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 3:
                mem = int(float(parts[1])) if parts[1].replace(".", "", 1).isdigit() else 0
                out.append({"name": parts[0], "kind": "cuda", "memory_mb": mem, "driver": parts[2]})
    if not out and "jetson" in board.lower():
        # Jetson's integrated GPU has no nvidia-smi query; the board name is the best label.
        out.append({"name": board, "kind": "cuda", "memory_mb": 0, "driver": nv_release[:60]})
    return out


def read_device_facts(files: DeviceFiles | None = None) -> dict[str, Any]:
    """Static facts: names, CPU, RAM, OS, board, properties (Android's, and the CPU's int8 dot-product
    instructions), accelerators and the big cores."""
    files = files or LocalFiles()
    got = files.read_all(["/proc/cpuinfo", "/proc/meminfo", *_DT_MODEL, f"{_CPU_SYSFS}/present", "/etc/nv_tegra_release"])
    all_props = parse_getprop(files.getprop())
    props = {k: all_props[k] for k in ANDROID_PROPS if k in all_props}
    cpuinfo = got.get("/proc/cpuinfo", "")
    dot = int8_dot_product(cpuinfo)
    if dot:  # a raw fact beside Android's properties; left out when cpuinfo lists no flags (unknown)
        props["int8_dot_product"] = dot
    # A phone's marketing name says more than its device tree; a board's device tree names the board, not the SoC.
    board = props.get("ro.product.model") or next((got[p] for p in _DT_MODEL if got.get(p)), "")
    system = files.system()
    local = isinstance(files, LocalFiles) and files.root == Path("/")
    return {
        **system,
        "board": board,
        "cpu_model": _cpu_model(cpuinfo, props),
        "cpu_cores": _cpu_count(got, cpuinfo) or ((os.cpu_count() or 0) if local else 0),
        "ram_mb": _ram_mb(got.get("/proc/meminfo", "")),
        "properties": props,
        "accelerators": _accelerators(board, got.get("/etc/nv_tegra_release", ""), local),
        "big_cores": big_cores(files),
        "python_version": sys.version.split()[0] if local else "",
    }


def _per_cpu(files: DeviceFiles, leaf: str) -> dict[int, int]:
    """CPU -> the integer in ``/sys/devices/system/cpu/cpuN/<leaf>``, for the CPUs that have it."""
    out = {}
    for path, text in files.read_all([f"{_CPU_SYSFS}/cpu[0-9]*/{leaf}"]).items():
        cpu = path[len(_CPU_SYSFS) + len("/cpu") :].split("/", 1)[0]
        if cpu.isdigit() and text.isdigit():
            out[int(cpu)] = int(text)
    return out


def cpu_max_freqs_khz(files: DeviceFiles) -> dict[int, int]:
    """Each CPU's ``cpuinfo_max_freq`` (kHz), for the CPUs that expose cpufreq."""
    return _per_cpu(files, "cpufreq/cpuinfo_max_freq")


def big_cores(files: DeviceFiles | None = None) -> list[int]:
    """The fastest CPUs: those with the highest maximum frequency, else the highest ``cpu_capacity``.

    Empty when the device exposes neither (no cpufreq, e.g. a VM or a locked-down phone): callers
    then leave the CPUs unpinned.
    """
    files = files or LocalFiles()
    ranks = cpu_max_freqs_khz(files) or _per_cpu(files, "cpu_capacity")
    if not ranks:
        return []
    top = max(ranks.values())
    return sorted(cpu for cpu, rank in ranks.items() if rank == top)


def read_device_state(cpus: Iterable[int] | None = None, files: DeviceFiles | None = None) -> dict[str, Any]:
    """Temperatures of every thermal zone, and governor/frequencies of ``cpus`` (this process's CPUs when None)."""
    files = files or LocalFiles()
    indices = sorted(cpus) if cpus is not None else sorted(allowed_cpus())
    got = files.read_all([f"{_THERMAL}/type", f"{_THERMAL}/temp", *(f"{_CPU_SYSFS}/cpu{c}/cpufreq/scaling_*" for c in indices)])
    thermal = []
    zones = sorted({p.rsplit("/", 2)[1] for p in got if p.startswith("/sys/class/thermal/")}, key=lambda z: (len(z), z))
    for zone in zones:
        base = f"/sys/class/thermal/{zone}"
        try:
            temp_c = int(got.get(f"{base}/temp", "")) / 1000.0
        except ValueError:
            continue
        if temp_c > _MIN_REAL_TEMP_C:
            thermal.append({"zone": zone, "type": got.get(f"{base}/type", ""), "temp_c": temp_c})

    def freq(cpu: int, name: str) -> int:
        text = got.get(f"{_CPU_SYSFS}/cpu{cpu}/cpufreq/scaling_{name}", "")
        return int(text) if text.isdigit() else 0

    cpu_states = [
        {
            "cpu": cpu,
            "governor": got.get(f"{_CPU_SYSFS}/cpu{cpu}/cpufreq/scaling_governor", ""),
            "cur_freq_khz": freq(cpu, "cur_freq"),
            "min_freq_khz": freq(cpu, "min_freq"),
            "max_freq_khz": freq(cpu, "max_freq"),
        }
        for cpu in indices
    ]
    return {"thermal": thermal, "cpus": cpu_states, "unix_time_s": time.time()}
