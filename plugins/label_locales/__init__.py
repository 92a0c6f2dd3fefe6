"""First-party plugin: every label given as a locale map has the pack's default locale.

A label map without the default locale shows an id instead of text to everyone who uses
that locale, so the pack is refused until it is translated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from quotaflow import hookimpl
from quotaflow.packs.problems import Problem, path_text

LABEL_KEYS = {"label", "name", "description", "help", "title", "error", "message"}


@hookimpl
def validate_pack(pack: Any) -> list[Problem]:
    """Problems for label maps missing the pack's default locale."""
    locale = pack.pack.locale
    problems = []
    for doc in pack.documents:
        for path, label in _label_maps(doc, ()):
            if locale not in label:
                problems.append(
                    Problem(
                        f"{doc['kind']} {doc['id']}",
                        None,
                        path_text(path),
                        f"label has no '{locale}' text (the pack's default locale); "
                        f"it has: {', '.join(label)}",
                    )
                )
    return problems


def _label_maps(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], dict[str, str]]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in LABEL_KEYS and isinstance(item, dict):
                yield (*path, key), item
            else:
                yield from _label_maps(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _label_maps(item, (*path, i))
