"""Our class vocabulary and the `--class-map` that renames a dataset's classes into it.

`head` is a head WITHOUT a helmet (a violation), `helmet` a head wearing a hard hat; the detector
maps detections to PPE state by these names, never by index (see docs/contract.md).

Example:
    >>> mapping = parse_class_map("hat=helmet,no_hat=head,dog=-")
    >>> resolve_names(["hat", "no_hat", "dog"], mapping)
    {0: 1, 1: 0, 2: None}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

# Canonical order: a class keeps its id across every dataset version we write.
# New classes go at the end. The rules' defaults per requirement are in siteguard/kinds.py.
OUR_CLASSES: tuple[str, ...] = (
    "head",
    "helmet",
    "person",
    "harness",
    "no_harness",
    "vest",
    "no_vest",
)
DROP = "-"  # `--class-map dog=-` drops a source class
# A class a trainer adds in the box editor (e.g. `gloves`): it becomes an ONNX class name the
# rules config refers to, so lowercase words joined by `_`, like ours.
CLASS_NAME = re.compile(r"[a-z]+(?:_[a-z]+)*")
MAX_CLASS_NAME = 64


class ClassMapError(ValueError):
    """A class map names a class we do not know, or a source class is left unmapped."""


def class_name_error(name: str) -> str | None:
    """Why `name` cannot be a class name, or None when it can (`vest`, `no_harness`)."""
    if len(name) > MAX_CLASS_NAME:
        return f"class name {name[:20]!r}... is longer than {MAX_CLASS_NAME} characters"
    if not CLASS_NAME.fullmatch(name):
        return (
            f"class name {name!r}: use lowercase letters, words joined by '_' "
            f"(e.g. vest, no_harness; ours are {', '.join(OUR_CLASSES)})"
        )
    return None


def grown_names(base: Sequence[str], labelled: Iterable[str]) -> tuple[str, ...]:
    """A model's classes grown by the `labelled` classes it lacks: the base classes keep their
    ids, new ones follow in our canonical order, then others alphabetically.

    >>> grown_names(["head", "helmet", "person"], ["vest", "helmet", "gloves"])
    ('head', 'helmet', 'person', 'vest', 'gloves')
    """
    rank = {name: i for i, name in enumerate(OUR_CLASSES)}
    new = {name for name in labelled if name not in base}
    for name in new:
        if error := class_name_error(name):
            raise ClassMapError(error)
    ordered = sorted(new, key=lambda n: (rank.get(n, len(rank)), n))
    return (*base, *ordered)


def parse_class_map(text: str | None) -> dict[str, str]:
    """Parse `a=b,c=d` into {source: target}; target must be one of ours or `-` (drop)."""
    mapping: dict[str, str] = {}
    if not text:
        return mapping
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ClassMapError(f"class map entry {item!r} is not of the form source=target")
        if target != DROP and target not in OUR_CLASSES:
            raise ClassMapError(
                f"class map entry {item!r}: unknown target class {target!r}; "
                f"ours are {', '.join(OUR_CLASSES)} (or '-' to drop)"
            )
        if source in mapping and mapping[source] != target:
            raise ClassMapError(f"class map maps {source!r} twice")
        mapping[source] = target
    return mapping


def resolve_names(
    source_names: Sequence[str] | Mapping[int, str],
    mapping: Mapping[str, str],
    targets: Sequence[str] = OUR_CLASSES,
) -> dict[int, int | None]:
    """Source class id -> target class id (index into `targets`), None for dropped classes.

    A source name maps through `mapping` when listed there, else to itself; a name that is
    neither mapped nor one of `targets` is an error that says how to fix it.
    """
    names = dict(enumerate(source_names)) if not isinstance(source_names, Mapping) else source_names
    unknown_keys = set(mapping) - set(names.values())
    if unknown_keys:
        raise ClassMapError(
            f"class map names source classes not in the dataset: {', '.join(sorted(unknown_keys))}"
            f" (dataset classes: {', '.join(names.values())})"
        )
    index = {name: i for i, name in enumerate(targets)}
    result: dict[int, int | None] = {}
    unmapped = []
    for source_id, name in names.items():
        target = mapping.get(name, name)
        if target == DROP:
            result[int(source_id)] = None
        elif target in index:
            result[int(source_id)] = index[target]
        elif name in mapping:
            raise ClassMapError(
                f"class {name!r} maps to {target!r}, which is not a class here "
                f"({', '.join(targets)})"
            )
        else:
            unmapped.append(name)
    if unmapped:
        raise ClassMapError(
            f"dataset classes {', '.join(repr(n) for n in unmapped)} are not ours "
            f"({', '.join(targets)}); map each to one of ours, e.g. --class-map "
            f"{unmapped[0]}=<ours>, or drop it with {unmapped[0]}=-"
        )
    return result
