from __future__ import annotations

import pytest

from training.classmap import ClassMapError, parse_class_map, resolve_names


def test_maps_drops_and_keeps_our_names() -> None:
    mapping = parse_class_map("hat=helmet, no_hat=head,dog=-")
    assert resolve_names(["no_hat", "hat", "dog", "person"], mapping) == {0: 0, 1: 1, 2: None, 3: 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hat=hardhat", "unknown target class 'hardhat'"),
        ("hat", "not of the form source=target"),
        ("=helmet", "not of the form source=target"),
        ("hat=helmet,hat=head", "maps 'hat' twice"),
    ],
)
def test_bad_class_map_says_why(text: str, message: str) -> None:
    with pytest.raises(ClassMapError, match=message):
        parse_class_map(text)


def test_unmapped_source_class_is_named_with_a_fix() -> None:
    with pytest.raises(ClassMapError, match=r"'hat'.*--class-map hat=<ours>"):
        resolve_names(["hat", "head"], {})


def test_class_map_key_missing_from_dataset_is_an_error() -> None:
    with pytest.raises(ClassMapError, match="not in the dataset: hatt"):
        resolve_names(["hat"], parse_class_map("hatt=helmet"))


def test_targets_can_be_a_models_names() -> None:
    coco_like = ["person", "bicycle"]
    mapping = parse_class_map("head=-,helmet=-")
    assert resolve_names(["head", "helmet", "person"], mapping, coco_like) == {
        0: None,
        1: None,
        2: 0,
    }


def test_grown_names_keep_the_base_ids_and_add_ours_first() -> None:
    from training.classmap import grown_names

    base = ("head", "helmet", "person")
    assert grown_names(base, ["helmet", "vest"]) == (*base, "vest")
    assert grown_names(base, ["gloves", "vest", "harness"]) == (*base, "harness", "vest", "gloves")
    assert grown_names(base, ["head"]) == base
    with pytest.raises(ClassMapError, match="lowercase letters"):
        grown_names(base, ["Safety Vest"])


@pytest.mark.parametrize(
    ("name", "ok"),
    [("vest", True), ("no_harness", True), ("Vest", False), ("_vest", False), ("vest_", False),
     ("no__harness", False), ("vest2", False), ("", False), ("a" * 65, False)],
)  # fmt: skip
def test_class_names_are_lowercase_words(name: str, ok: bool) -> None:
    from training.classmap import class_name_error

    assert (class_name_error(name) is None) == ok
