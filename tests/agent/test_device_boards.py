"""Device facts read from recorded board trees (tests/fixtures/boards) by the agent's own code."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.device import (
    LocalFiles,
    big_cores,
    int8_dot_product,
    parse_getprop,
    read_device_facts,
    read_device_state,
)

BOARDS = Path(__file__).resolve().parents[1] / "fixtures" / "boards"

# board dir: (board, cpu_model, cores, big cores, governor, first thermal zone type, Android SoC)
EXPECTED = {
    "raspberry-pi-4": ("Raspberry Pi 4 Model B Rev 1.4", "BCM2835: 4x Cortex-A72", 4, [0, 1, 2, 3], "ondemand", "cpu-thermal", None),
    "raspberry-pi-5": ("Raspberry Pi 5 Model B Rev 1.0", "4x Cortex-A76", 4, [0, 1, 2, 3], "ondemand", "cpu-thermal", None),
    "jetson-orin-nano": ("NVIDIA Jetson Orin Nano Developer Kit", "6x Cortex-A78AE", 6, [0, 1, 2, 3, 4, 5], "schedutil",
                         "cpu-thermal", None),
    "pixel-7": ("Pixel 7", "GS201: 4x Cortex-A55 + 2x Cortex-A78 + 2x Cortex-X1", 8, [6, 7], "sched_pixel", "BIG", "GS201"),
    "galaxy-s23": ("SM-S911B", "SM8550: 3x Cortex-A510 + 2x Cortex-A715 + 2x Cortex-A710 + 1x Cortex-X3", 8, [7], "walt",
                   "aoss-0", "SM8550"),
}  # fmt: skip
# the int8 dot-product instructions each board's cores list (the Pi 4's Cortex-A72 has none)
INT8_DOT = {"raspberry-pi-4": "none", "raspberry-pi-5": "asimddp", "jetson-orin-nano": "asimddp", "pixel-7": "asimddp",
            "galaxy-s23": "asimddp,i8mm"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_board_facts(name: str) -> None:
    board, cpu_model, cores, big, governor, zone, soc = EXPECTED[name]
    files = LocalFiles(BOARDS / name)
    facts = read_device_facts(files)
    assert (facts["board"], facts["cpu_model"], facts["cpu_cores"]) == (board, cpu_model, cores)
    assert facts["big_cores"] == big == big_cores(files)
    assert facts["ram_mb"] > 1000
    assert facts["properties"].get("ro.soc.model") == soc
    assert facts["properties"]["int8_dot_product"] == INT8_DOT[name]
    assert bool(facts["accelerators"]) == name.startswith("jetson")
    state = read_device_state(range(cores), files)
    assert {c["governor"] for c in state["cpus"]} == {governor}
    assert all(c["max_freq_khz"] > c["min_freq_khz"] > 0 for c in state["cpus"])
    assert state["thermal"][0]["type"] == zone
    # Disabled sensors (Jetson's -256 C cv zones) are not temperatures.
    assert all(20.0 < z["temp_c"] < 90.0 for z in state["thermal"])


def test_big_cores_follow_frequency_then_capacity(tmp_path: Path) -> None:
    # Without cpufreq (some VMs, locked-down phones) cpu_capacity still tells big from little.
    for cpu, capacity in enumerate([160, 160, 1024, 1024]):
        (tmp_path / f"sys/devices/system/cpu/cpu{cpu}").mkdir(parents=True)
        (tmp_path / f"sys/devices/system/cpu/cpu{cpu}/cpu_capacity").write_text(f"{capacity}\n")
    assert big_cores(LocalFiles(tmp_path)) == [2, 3]


def test_board_without_cpufreq_or_thermal(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text((BOARDS / "raspberry-pi-4/proc/cpuinfo").read_text())
    files = LocalFiles(tmp_path)
    facts = read_device_facts(files)
    assert facts["cpu_cores"] == 4 and facts["board"] == "" and facts["big_cores"] == []
    state = read_device_state([0, 1], files)
    assert state["thermal"] == [] and [c["governor"] for c in state["cpus"]] == ["", ""]


def test_parse_getprop() -> None:
    text = "[ro.product.model]: [Pixel 7]\n[ro.empty]: []\n[ro.multi]: [a]: [b]\nnot a prop\n"
    assert parse_getprop(text) == {"ro.product.model": "Pixel 7", "ro.multi": "a]: [b"}


def test_int8_dot_product_on_x86_flags() -> None:
    avx2_only = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert int8_dot_product(avx2_only) == "none"
    assert int8_dot_product(avx2_only.replace("avx2", "avx2 avx512f avx512_vnni")) == "avx512_vnni"
    assert int8_dot_product(avx2_only.replace("avx2", "avx2 avx_vnni")) == "avx_vnni"
    assert int8_dot_product("processor\t: 0\n") == ""  # no flags line: unknown, not "none"
