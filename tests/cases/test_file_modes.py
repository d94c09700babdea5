"""Everything Vigil writes that quotes messages is owner-only, whatever the umask.

Evidence packs, scan reports, label exports and ``vigil scan``'s default database: files 0600, the folders
Vigil creates for them 0700; folders that already existed keep their mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cases.helpers import CHILD_SAFETY, PLATFORM, SPACE, Harness
from tests.support.cli_data import grooming, write_jsonl
from tests.support.files import mode
from vigil.bots.cli import main
from vigil.bots.core.evidence import export_case


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


async def test_an_evidence_pack_and_the_folders_made_for_it_are_owner_only(
    permissive_umask: None, harness: Harness, tmp_path: Path
) -> None:
    control = tmp_path / "control.txt"
    control.write_text("x", encoding="utf-8")
    assert mode(control) == 0o644  # what a plain write gives under this umask
    alert = await harness.raise_alert()
    existing = tmp_path / "exports"
    existing.mkdir()
    existing.chmod(0o755)

    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=alert.case_number,
        out_dir=existing / "2026" / "packs",
        actor=CHILD_SAFETY,
    )

    assert mode(existing) == 0o755  # the admin's folder is left as it was
    assert mode(existing / "2026") == 0o700 and mode(existing / "2026" / "packs") == 0o700
    assert mode(folder) == 0o700
    pack = files_under(folder)
    assert [p.name for p in pack] == ["case.json", "manifest.sha256", "transcript.html"]
    assert {p.name: mode(p) for p in pack} == dict.fromkeys(
        ("case.json", "manifest.sha256", "transcript.html"), 0o600
    )


def test_scan_database_report_and_exports_from_the_cli_are_owner_only(
    permissive_umask: None, tmp_path: Path, keyword_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "chats.jsonl", [grooming("c-1")])
    config = tmp_path / "vigil.toml"
    # The same file as `vigil scan`'s default --db, so the case commands read what the scan wrote.
    config.write_text(
        f'[storage]\ndatabase = "vigil-scan.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir}"\n'
        "intra_op_threads = 1\n",
        encoding="utf-8",
    )
    (tmp_path / "report.html").write_text("an older report", encoding="utf-8")
    assert mode(tmp_path / "report.html") == 0o644

    assert main(["--config", str(config), "scan", str(data), "--report", "report"]) == 0

    assert mode(tmp_path / "vigil-scan.sqlite3") == 0o600
    assert mode(tmp_path / "report.html") == 0o600 and mode(tmp_path / "report.json") == 0o600
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    [pair] = report["flagged_pairs"]
    assert "secret groom" in (tmp_path / "report.html").read_text(encoding="utf-8")

    pack_args = ["export-case", str(pair["case_number"]), "--platform", pair["platform"]]
    assert main(["--config", str(config), *pack_args, "--space", pair["space_id"], "--out", "out/packs"]) == 0
    assert mode(tmp_path / "out") == 0o700 and mode(tmp_path / "out" / "packs") == 0o700
    pack = files_under(tmp_path / "out" / "packs")
    assert len(pack) == 3 and all(mode(p) == 0o600 for p in pack)
    assert all(mode(p.parent) == 0o700 for p in pack)

    assert main(["--config", str(config), "export-labels", "--out", "labels/verdicts.jsonl"]) == 0
    assert mode(tmp_path / "labels") == 0o700 and mode(tmp_path / "labels" / "verdicts.jsonl") == 0o600
    # Nothing else was left behind (no temporary files, no stray WAL files after a clean close).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chats.jsonl",
        "labels",
        "out",
        "report.html",
        "report.json",
        "vigil-scan.sqlite3",
        "vigil.toml",
    ]
