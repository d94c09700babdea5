"""Vigil's HTML outputs (the evidence transcript, the scan report), rendered from ``templates/`` with Jinja2.

One environment rule for every page: autoescape on, so every value is escaped unless a template says
otherwise (none does), and ``StrictUndefined``, so a value a template names but is not given fails loudly
instead of printing nothing.
"""

from __future__ import annotations

import jinja2

__all__ = ["render_html"]


def render_html(*, template: str, **values: object) -> str:
    """``template`` (a file in ``templates/``) filled with ``values``, every value escaped."""
    # Built per page rather than cached in a module global: pages are written rarely (an export, a scan).
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vigil.bots.core", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(template).render(**values)
