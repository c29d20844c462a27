"""One vocabulary across commands: the same flag spelling means the same thing everywhere, old
spellings still parse, and a mistyped device name gets a suggestion."""

from __future__ import annotations

from pathlib import Path

from .conftest import invoke, invoke_json, one_line


def test_device_names_suggest_the_close_one(db: Path) -> None:
    result = invoke("lut", "predict", "--db", db, "--device", "Note10", "--arch", "{}")
    assert result.exit_code == 2
    assert "unknown device 'Note10'; known devices: i7, note10; did you mean 'note10'?" in one_line(result.stderr)
    result = invoke("compare", "--db", db, "--device", "note1O", "--device", "i7")
    assert result.exit_code == 2 and "did you mean 'note10'?" in one_line(result.stderr)
    result = invoke("lut", "export", "--db", db, "--device", "zzz", "--out", db.parent / "x.csv")
    assert result.exit_code == 2 and "did you mean" not in result.stderr


def test_compare_takes_repeated_device_and_the_old_devices_list(db: Path) -> None:
    new = invoke_json("compare", "--db", db, "--device", "note10", "--device", "i7", "--subnets", "50",
                      "--resolutions", "224")
    old = invoke_json("compare", "--db", db, "--devices", "note10", "i7", "--subnets", "50",
                      "--resolution", "224")
    assert new["devices"] == old["devices"] == ["note10", "i7"]
    assert new["resolutions"] == old["resolutions"] == [224]


def test_export_format_follows_the_extension(db: Path, tmp_path: Path) -> None:
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "n.csv")
    assert doc["format"] == "csv" and "\nblock_key," in Path(doc["files"][0]).read_text()
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "n.parquet")
    assert doc["format"] == "parquet"
    doc = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "yaml")
    assert doc["format"] == "ofa-yaml" and len(doc["files"]) == 6  # 5 resolutions and the setting
    bad = invoke("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "one.yaml")
    assert bad.exit_code == 2 and "give a directory" in bad.stderr


def test_agent_flags_parse_the_same_everywhere() -> None:
    # No agent listens on port 1: each command must get past parsing and fail reaching it (exit 1),
    # whichever spelling is used.
    for args in (["devices", "127.0.0.1:1"], ["devices", "--agent", "x=127.0.0.1:1"],
                 ["devices", "--agent", "127.0.0.1:1", "--timeout-s", "0.2"]):
        result = invoke(*args, "--connect-timeout-s", "0.2")
        assert result.exit_code == 1, result.output
        assert "127.0.0.1:1" in result.stderr
    result = invoke("devices")
    assert result.exit_code == 2 and "--agent" in result.stderr
