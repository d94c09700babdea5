"""``deploy/vigil.service``: systemd's own checks (where systemd-analyze exists) and its key directives."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.config.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "vigil.service"
SYSTEMD_CONFIG = REPO / "deploy" / "vigil.systemd.toml"
INSTALLED_VIGIL = "/opt/vigil/bin/vigil"
MAX_EXPOSURE = 2.0  # `systemd-analyze security`: 0 is fully sandboxed, 10 not at all


def directives(unit: Path) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value, in order (keys such as SystemCallFilter may repeat)."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not a directive: {raw!r}"
        found.setdefault((section, key.strip()), []).append(value.strip())
    return found


def service(key: str) -> str:
    values = directives(UNIT)[("Service", key)]
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def local_copy(tmp_path: Path, text: str | None = None) -> Path:
    # systemd-analyze checks that ExecStart's program exists: point it at this environment's vigil.
    local_vigil = str(Path(sys.executable).parent / "vigil")
    copy = tmp_path / "vigil.service"
    copy.write_text(
        (text or UNIT.read_text(encoding="utf-8")).replace(INSTALLED_VIGIL, local_vigil), encoding="utf-8"
    )
    return copy


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed here; the directive tests below still run")
    return found


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), *args], capture_output=True, text=True, check=False, timeout=60)


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    result = analyze("verify", str(local_copy(tmp_path)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_does_report_a_mistake(tmp_path: Path) -> None:
    broken = UNIT.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSytem=strict")
    result = analyze("verify", str(local_copy(tmp_path, broken)))
    assert "Unknown key" in result.stdout + result.stderr


def test_the_sandbox_rates_as_well_protected(tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", "--no-pager", str(local_copy(tmp_path)))
    match = re.search(r"Overall exposure level for vigil\.service: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_it_runs_vigil_as_its_own_user_after_checking_the_config() -> None:
    assert service("User") == "vigil" and service("Group") == "vigil"
    assert service("EnvironmentFile") == "/etc/vigil/vigil.env"  # secrets: root-only file, read by systemd
    assert service("ExecStartPre") == f"{INSTALLED_VIGIL} check-config /etc/vigil/vigil.toml"
    assert service("ExecStart") == f"{INSTALLED_VIGIL} --config /etc/vigil/vigil.toml run"
    assert directives(UNIT)[("Install", "WantedBy")] == ["multi-user.target"]


def test_it_restarts_on_failure_with_a_pause_and_a_limit() -> None:
    assert service("Restart") == "on-failure"
    assert service("RestartSec") == "15s"
    unit = directives(UNIT)
    assert unit[("Unit", "StartLimitIntervalSec")] == ["10min"] and unit[("Unit", "StartLimitBurst")] == ["5"]
    assert service("KillSignal") == "SIGTERM" and service("TimeoutStopSec") == "30s"


def test_its_files_are_private_and_it_writes_only_its_state_folder() -> None:
    assert service("UMask") == "0077"
    assert service("StateDirectory") == "vigil" and service("StateDirectoryMode") == "0700"
    assert service("ProtectSystem") == "strict" and service("ReadWritePaths") == "/var/lib/vigil"
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges", "RestrictSUIDSGID"):
        assert service(key) == "yes", key
    assert service("CapabilityBoundingSet") == ""
    # The example config keeps the database in the state folder, the only place the service may write.
    database = load_settings(SYSTEMD_CONFIG).resolved_database_path(None)
    assert Path(database).parent == Path("/var/lib/vigil")
    assert load_settings(SYSTEMD_CONFIG).metrics.host == "127.0.0.1"
