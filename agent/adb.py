"""The adb bridge: an agent on this host that times a USB-attached Android phone.

The phone needs no Python: the agent (server, model cache, worker) runs here and reaches the phone
with the ``adb`` binary. Each model is pushed once to a content-addressed path on the phone
(``/data/local/tmp/lutnas/<sha256>.tflite``); each job runs TFLite's ``benchmark_model`` over
``adb shell``, pinned with ``taskset`` to the phone's big cores (read from the phone's own cpufreq);
the device facts and the state before and after each job are the phone's (``getprop``, /proc, /sys).

Started with ``lutnas agent serve --adb SERIAL --benchmark-model-bin /data/local/tmp/benchmark_model``.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.device import DeviceFiles, LocalFiles, big_cores, parse_getprop
from agent.errors import one_line

__all__ = [
    "ADB_SERIAL_OPTION",
    "ADB_CPUS_OPTION",
    "REMOTE_DIR",
    "AdbError",
    "AdbDevice",
    "AdbFiles",
    "connect",
    "device_files",
    "job_options",
    "job_state_source",
    "taskset_mask",
]

# Job options the agent sets for benchmark_model in adb mode; a job may not set them (agent.jobs).
ADB_SERIAL_OPTION = "adb.serial"
ADB_CPUS_OPTION = "adb.cpus"
REMOTE_DIR = "/data/local/tmp/lutnas"  # adb shell may write here without root
_MARK = "@@lutnas-file@@ "  # separates files in one batched `cat`; no sysfs or procfs text starts with it
_TIMEOUT_S = 30.0


class AdbError(RuntimeError):
    """adb could not reach the phone or a command on it failed; the message is one line."""


@dataclass(frozen=True)
class AdbDevice:
    """One phone, addressed by its adb serial (``adb devices`` lists them)."""

    serial: str
    adb: str = "adb"  # the adb binary, looked up on PATH

    def run(self, args: Sequence[str], timeout_s: float = _TIMEOUT_S) -> str:
        """``adb -s SERIAL ARGS...``; its stdout.

        Raises:
            AdbError: adb is missing, timed out, or exited non-zero.
        """
        cmd = [self.adb, "-s", self.serial, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except FileNotFoundError as err:
            raise AdbError(f"no {self.adb!r} on PATH; install Android platform-tools") from err
        except OSError as err:
            raise AdbError(f"cannot run {self.adb}: {err.strerror}") from err
        except subprocess.TimeoutExpired as err:
            raise AdbError(f"adb -s {self.serial} {args[0]} ran past {timeout_s:.0f} s") from err
        if proc.returncode != 0:
            said = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
            raise AdbError(f"adb -s {self.serial} {args[0]}: {one_line(said, 200)}")
        return proc.stdout

    def shell(self, script: str, timeout_s: float = _TIMEOUT_S) -> str:
        """Run ``script`` in the phone's shell; its stdout."""
        return self.run(["shell", script], timeout_s)

    def check(self) -> None:
        """Raises AdbError unless the phone is attached and authorized."""
        try:
            state = self.run(["get-state"], 10.0).strip()
        except AdbError as err:
            raise AdbError(f"adb device {self.serial!r} is not reachable ({err}); see `adb devices`") from err
        if state != "device":
            raise AdbError(f"adb device {self.serial!r} is {state!r}, not ready; see `adb devices`")

    def push_blob(self, data: bytes, suffix: str) -> str:
        """Put ``data`` at its content-addressed path on the phone, once; returns that path."""
        remote = f"{REMOTE_DIR}/{hashlib.sha256(data).hexdigest()}{suffix}"
        if self.shell(f"[ -f {remote} ] && echo present || true").strip() == "present":
            return remote
        with tempfile.TemporaryDirectory(prefix="lutnas-adb-") as tmp:
            local = Path(tmp) / Path(remote).name
            local.write_bytes(data)
            self.shell(f"mkdir -p {REMOTE_DIR}")
            # A partial push never sits under the final name: a later job would trust it.
            self.run(["push", str(local), f"{remote}.part"], timeout_s=300.0)
            self.shell(f"mv {remote}.part {remote}")
        return remote

    def is_executable(self, path: str) -> bool:
        """Whether ``path`` is an executable file on the phone."""
        return self.shell(f"[ -x {shlex.quote(path)} ] && [ -f {shlex.quote(path)} ] && echo yes || true").strip() == "yes"


@dataclass(frozen=True)
class AdbFiles:
    """The phone's files and properties, read over adb (one ``adb shell`` per batch of files)."""

    device: AdbDevice

    def read_all(self, patterns: Sequence[str]) -> dict[str, str]:
        # The phone's shell expands the globs; unreadable files (permissions) are left out.
        script = f'for f in {" ".join(patterns)}; do [ -f "$f" ] && [ -r "$f" ] && {{ echo "{_MARK}$f"; cat "$f" 2>/dev/null; echo; }}; done; true'
        out: dict[str, str] = {}
        path, lines = "", []
        for line in (self.device.shell(script) + f"\n{_MARK}").splitlines():
            if line.startswith(_MARK):
                text = "\n".join(lines).strip().strip("\x00")
                if path and text:
                    out[path] = text
                path, lines = line[len(_MARK) :], []
            else:
                lines.append(line)
        return out

    def getprop(self) -> str:
        return self.device.shell("getprop")

    def system(self) -> dict[str, str]:
        machine, _, release = self.device.shell("uname -m; uname -r").strip().partition("\n")
        props = parse_getprop(self.getprop())
        android = props.get("ro.build.version.release", "")
        name = props.get("ro.product.device") or self.device.serial
        return {"hostname": name, "os": f"Android {android} (Linux {release.strip()})", "machine": machine.strip()}


def connect(serial: str, adb: str = "adb") -> tuple[AdbDevice, list[int]]:
    """Check the phone is reachable; return it and its big cores (empty when it exposes no cpufreq).

    Raises:
        ValueError: the phone is not reachable, or adb is missing (one line, for the command line).
    """
    device = AdbDevice(serial, adb)
    try:
        device.check()
        cores = big_cores(AdbFiles(device))
    except AdbError as err:
        raise ValueError(str(err)) from err
    return device, cores


def device_files(adb_serial: str | None) -> DeviceFiles:
    """Where the agent's device facts come from: the phone over adb, else this machine."""
    return AdbFiles(AdbDevice(adb_serial)) if adb_serial else LocalFiles()


def job_options(adb_serial: str | None, phone_cpus: Sequence[int]) -> dict[str, str]:
    """The options the agent adds to a benchmark_model job in adb mode (none otherwise)."""
    if not adb_serial:
        return {}
    return {ADB_SERIAL_OPTION: adb_serial, ADB_CPUS_OPTION: ",".join(map(str, phone_cpus))}


def taskset_mask(cpus: Sequence[int]) -> str:
    """``taskset``'s hex mask of ``cpus`` (``[6, 7]`` -> ``c0``)."""
    return format(sum(1 << c for c in cpus), "x")


def job_state_source(job: Mapping[str, Any], cpus: Sequence[int] | None) -> tuple[Sequence[int] | None, DeviceFiles | None]:
    """The CPUs and files a job's before/after state is read from: the phone's big cores in adb mode."""
    options = job.get("options", {})
    serial = options.get(ADB_SERIAL_OPTION)
    if not serial:
        return cpus, None
    phone_cpus = [int(c) for c in options.get(ADB_CPUS_OPTION, "").split(",") if c.strip().isdigit()]
    return phone_cpus, AdbFiles(AdbDevice(serial))

