"""Vigil: flags likely child-grooming conversations for moderators. Run as ``vigil`` or ``python -m vigil``.

The installed package is this one import root. In the repository its parts stay visible at the top
(``bots/``, ``detector/``, ``storage/``, ``config/``); ``vigil/`` links them in, so the source tree imports
exactly as the wheel does.
"""

from __future__ import annotations

__all__: list[str] = []
