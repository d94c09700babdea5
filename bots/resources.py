"""Files shipped inside the ``vigil`` package, found with ``importlib.resources`` wherever it is installed."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["SHOWABLE", "demo_conversations_path", "packaged_path", "shipped_text"]

# What `vigil show NAME` prints: admins who installed the wheel have no repository to read these from.
SHOWABLE: dict[str, tuple[str, str]] = {
    "example-config": ("vigil.config", "vigil.example.toml"),
    "slack-manifest": ("vigil.bots.slack", "manifest.yaml"),
    "model-card": ("vigil.detector", "MODEL_CARD.md"),
}


def packaged_path(package: str, name: str) -> Path:
    """The file or folder ``name`` inside ``package`` as a real path (Vigil is always installed unzipped)."""
    resource = files(package).joinpath(name)
    path = Path(str(resource))
    if not path.exists():
        raise FileNotFoundError(f"{name} is missing from the installed {package} package ({path})")
    return path


def demo_conversations_path() -> Path:
    """The fictional conversations that ``vigil demo`` replays."""
    return packaged_path("vigil", "data/demo_conversations.jsonl")


def shipped_text(name: str) -> str:
    """The text of one of :data:`SHOWABLE` (raises ``KeyError`` for another name)."""
    package, filename = SHOWABLE[name]
    return files(package).joinpath(filename).read_text(encoding="utf-8")
