"""A second source in our convention: box growth, the group split, oversampling in merge."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import numpy as np
import pytest

from siteguard.cli import main
from training.box_convention import BoxConventionError, grow_boxes, parse_box_growth
from training.datasets import DatasetError, import_dataset, merge_datasets
from training.group_split import (
    GroupSplitError,
    parse_split_fractions,
    read_groups,
    split_of_group,
)
from training.labels import read_labels

CSS_MAP = (
    "Hardhat=helmet,NO-Hardhat=head,Person=person,Mask=-,NO-Mask=-,NO-Safety Vest=-,"
    "Safety Vest=-,Safety Cone=-,machinery=-,vehicle=-"
)
GROWTH = "helmet=1.12x1.68,head=1.17x2.07"
NAMES = ("head", "helmet", "person")


def test_grow_keeps_the_top_edge_and_the_centre_and_clips() -> None:
    rows = np.array([[1, 0.5, 0.2, 0.1, 0.1], [2, 0.5, 0.5, 0.2, 0.2], [0, 0.5, 0.95, 0.1, 0.1]])
    out = grow_boxes(rows, parse_box_growth(GROWTH), NAMES)
    helmet, person, head = out
    assert helmet[1] == pytest.approx(0.5) and helmet[3] == pytest.approx(0.112)
    assert helmet[2] - helmet[4] / 2 == pytest.approx(0.15)  # top edge unchanged
    assert helmet[4] == pytest.approx(0.168)
    assert person.tolist() == rows[1].tolist()  # classes not named keep their boxes
    assert head[2] + head[4] / 2 == pytest.approx(1.0)  # grown past the bottom: clipped
    assert rows[0, 4] == 0.1  # the input is not modified


@pytest.mark.parametrize("text", ["helmet=1.1", "helmet=x2", "=1x2", "helmet=0.1x2", "helmet"])
def test_bad_growth_is_refused_with_the_form_it_needs(text: str) -> None:
    with pytest.raises(BoxConventionError, match="CLASS=WIDTHxHEIGHT"):
        parse_box_growth(text)


def test_growth_of_an_unknown_class_is_refused() -> None:
    with pytest.raises(BoxConventionError, match="hat"):
        grow_boxes(np.zeros((0, 5)), parse_box_growth("hat=1x2"), NAMES)


@pytest.mark.parametrize(
    ("text", "message"),
    [("train=0.5,val=0.2", "sum to 1"), ("train=1.2", "SPLIT=FRACTION"), ("dev=1", "SPLIT")],
)
def test_bad_split_fractions(text: str, message: str) -> None:
    with pytest.raises(GroupSplitError, match=message):
        parse_split_fractions(text)


def test_group_split_is_stable_and_roughly_proportional() -> None:
    fractions = parse_split_fractions("train=0.6,val=0.2,test=0.2")
    splits = [split_of_group(f"g{i:04d}", fractions, seed=0) for i in range(2000)]
    assert splits == [split_of_group(f"g{i:04d}", fractions, seed=0) for i in range(2000)]
    share = splits.count("train") / len(splits)
    assert 0.55 < share < 0.65
    other_seed = [split_of_group(f"g{i:04d}", fractions, seed=1) for i in range(2000)]
    assert other_seed != splits


def test_groups_file_errors(tmp_path: Path) -> None:
    with pytest.raises(GroupSplitError, match="not found"):
        read_groups(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,clip\na,b\n")
    with pytest.raises(GroupSplitError, match="image,group"):
        read_groups(bad)


def test_import_of_the_second_source_splits_by_group_and_grows_boxes(
    css_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "css"
    manifest = import_dataset(
        css_dir,
        out,
        class_map=CSS_MAP,
        grow=GROWTH,
        groups=css_dir / "groups.csv",
        split_by_group="train=0.6,val=0.2,test=0.2",
    )
    assert set(manifest["splits"]) == {"train", "val", "test"}
    with (css_dir / "groups.csv").open() as handle:
        group_of = {row["image"]: row["group"] for row in csv.DictReader(handle)}
    split_of: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for image in (out / split / "images").iterdir():
            group = group_of[image.stem]
            assert split_of.setdefault(group, split) == split, f"group {group} in two splits"
    # A clip with many frames (the largest group) sits in one split whole.
    biggest = max(set(group_of.values()), key=list(group_of.values()).count)
    assert list(group_of.values()).count(biggest) > 5 and biggest in split_of
    # Boxes grew: each Hardhat box becomes a taller helmet box with the same top edge.
    image = next((out / "train" / "images").iterdir())
    ours = read_labels(out / "train" / "labels" / f"{image.stem}.txt", 3)
    source = read_labels(css_dir / "labels" / f"{image.stem}.txt", 10)
    hats, helmets = source[source[:, 0] == 0], ours[ours[:, 0] == 1]
    assert len(hats) == len(helmets)
    for hat, helmet in zip(hats, helmets, strict=True):
        assert helmet[2] - helmet[4] / 2 == pytest.approx(hat[2] - hat[4] / 2, abs=1e-5)
        assert helmet[4] > hat[4] or helmet[2] + helmet[4] / 2 == pytest.approx(1.0)


def test_split_by_group_needs_groups(css_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="go together"):
        import_dataset(css_dir, tmp_path / "x", class_map=CSS_MAP, split_by_group="train=1")
    assert not (tmp_path / "x").exists()


def test_merge_repeats_the_new_site_and_replays_a_share_of_the_base(
    mini_data: Path, css_dir: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    main(
        [
            "dataset", "import", str(css_dir), "--out", str(site), "--class-map", CSS_MAP,
            "--grow-boxes", GROWTH, "--groups", str(css_dir / "groups.csv"),
            "--split-by-group", "train=0.6,val=0.2,test=0.2",
        ]
    )  # fmt: skip
    site_train = len(list((site / "train" / "images").iterdir()))
    merged = merge_datasets(mini_data, [site], tmp_path / "mix", repeat=3, base_train_share=0.5)
    base_train = merged["splits"]["train"]["images"] - 3 * site_train
    assert 0 < base_train < 16  # a stable part of the 16 base train images
    again = merge_datasets(mini_data, [site], tmp_path / "mix2", repeat=3, base_train_share=0.5)
    assert again["splits"]["train"] == merged["splits"]["train"]
    assert merged["splits"]["val"]["images"] == 8 + len(list((site / "val" / "images").iterdir()))
    with pytest.raises(DatasetError, match="--repeat"):
        merge_datasets(mini_data, [site], tmp_path / "bad", repeat=0)


def test_a_merged_dataset_records_the_commands_that_rebuild_it(
    mini_data: Path, css_dir: Path, tmp_path: Path
) -> None:
    """The manifest's recipe lists the import, then the merge: what a model card prints under
    Reproduce for a model trained on it."""
    from training.manifest import read_manifest
    from training.model_card import data_recipe

    site, mix = tmp_path / "site", tmp_path / "mix"
    imported = ["dataset", "import", str(css_dir), "--out", str(site), "--class-map", CSS_MAP]
    assert main(imported) == 0
    merged = ["dataset", "merge", "--base", str(mini_data), "--add", str(site), "--out", str(mix),
              "--repeat", "2"]  # fmt: skip
    assert main(merged) == 0
    recipe = read_manifest(mix)["recipe"]  # type: ignore[index]
    assert recipe == ["siteguard " + shlex.join(imported), "siteguard " + shlex.join(merged)]
    facts = {"siteguard": {"data": str(mix / "data.yaml")}}
    assert data_recipe(facts) == recipe
    assert data_recipe({"siteguard": {"data": str(mini_data)}}) == []  # used as published
