"""Structure-aware fuzzing of inbound payloads: valid templates, broken in the ways real payloads break.

Each case takes a valid payload and applies one to three mutations at random places: a key dropped, a value
replaced by null, another JSON type, a huge or odd-Unicode string, a deep nest, an unknown key added, or
the whole payload replaced by a non-object. Seeded, so a failure names the case that reproduces it.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Iterator
from typing import Any

# Cases per inbound edge per run (issue 14: at least 10,000); VIGIL_FUZZ_CASES overrides it locally.
FUZZ_CASES = int(os.environ.get("VIGIL_FUZZ_CASES", "10000"))

_ODD_STRINGS = (
    "",
    " ",
    "\u2028forged line",
    "\x85nel",
    "\u202e\u2066bidi",
    "\u200b\ufeff",
    "\ud83d\ude00 emoji",
    "é" * 300,
    "x" * 70_000,
    "0",
    "-1",
    "99999999999999999999999",
    "null",
    "{}",
    "\x00nul",
    "secret groom text",
)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice((0, -1, 1, 2**53, -(2**63), 2**70))
    if kind == 3:
        return rng.choice((0.5, -1e308, 1e-308, 3.14))
    if kind in (4, 5, 6):
        return rng.choice(_ODD_STRINGS)
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(("id", "type", "x", "content", "d")): _random_value(rng, depth + 1)}


def _containers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict | list):
        yield path, value
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from _containers(child, (*path, key))


def mutate(template: Any, rng: random.Random) -> Any:
    """One broken copy of ``template``."""
    if rng.random() < 0.05:
        return _random_value(rng)  # not even an object
    payload = copy.deepcopy(template)
    for _ in range(rng.randint(1, 3)):
        containers = list(_containers(payload))
        if not containers:
            break
        _, container = rng.choice(containers)
        if isinstance(container, dict):
            if not container or rng.random() < 0.15:
                container[rng.choice(("unknown", "x" * 40, "\u2028"))] = _random_value(rng)
                continue
            key = rng.choice(list(container))
            if rng.random() < 0.35:
                del container[key]
            else:
                container[key] = _random_value(rng)
        elif container:
            index = rng.randrange(len(container))
            if rng.random() < 0.5:
                del container[index]
            else:
                container[index] = _random_value(rng)
        else:
            container.append(_random_value(rng))
    return payload


def cases(templates: list[Any], *, seed: int, count: int = FUZZ_CASES) -> Iterator[tuple[int, Any]]:
    """``count`` (case number, broken payload) from the templates, reproducible by ``seed``."""
    rng = random.Random(seed)
    for number in range(count):
        yield number, mutate(rng.choice(templates), rng)
