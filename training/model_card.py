"""`siteguard model-card`: a markdown card per exported model, built only from recorded facts.

Sources: the ONNX metadata (names, imgsz, versions, how it was exported), the evaluation JSON that
`siteguard evaluate`/`export` wrote beside the model, the training run folder (Ultralytics'
`args.yaml`, `results.csv`, our `siteguard_train.json`), and a short timing run on this machine.
Nothing here is typed in by hand, so the card cannot drift from the model.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.onnx_meta import read_metadata

CLASS_MEANING = {
    "head": "a head WITHOUT a hard hat (a violation)",
    "helmet": "a head wearing a hard hat",
    "person": "a whole person (read its AP50 on the sets below before trusting it)",
    "harness": "a safety harness",
    "no_harness": "a worker at height without a harness",
    "vest": "a high-visibility vest",
    "no_vest": "a torso without a high-visibility vest (a violation where vests are required)",
}


@dataclass(frozen=True)
class CardOptions:
    model: Path
    out: Path = Path("models/MODEL_CARD.md")
    evaluation: Path | None = None
    int8: Path | None = None
    run: Path | None = None
    timing_frames: int = 20


def _rel(path: str | Path) -> str:
    """Paths relative to the working directory when that is shorter (../shared/...)."""
    try:
        rel = os.path.relpath(Path(path).resolve())
    except ValueError:
        return str(path)
    return rel if len(rel) < len(str(path)) or not Path(path).is_absolute() else str(path)


def _load_eval(model: Path, explicit: Path | None, version: str | None) -> dict[str, Any] | None:
    """MODEL.eval.json (or `explicit`), refused when it was made for another model version."""
    path = explicit or model.with_suffix(".eval.json")
    if explicit is not None and not path.is_file():
        raise FileNotFoundError(f"evaluation JSON not found: {path}")
    if not path.is_file():
        return None
    figures = json.loads(path.read_text())
    if version and figures.get("model_version") != version:
        raise ValueError(
            f"{path} evaluates model version {figures.get('model_version')!r}, but {model} is "
            f"{version!r}; run `siteguard evaluate --model {model} --out {path}` again"
        )
    return figures


def time_model(model: Path, frames: int, image: Path | None = None) -> dict[str, float]:
    """Median ms per frame at batch 1 through OnnxDetector (after 3 warm-up runs)."""
    import cv2
    import numpy as np

    from detector.inference import OnnxDetector

    det = OnnxDetector(model)
    frame = cv2.imread(str(image)) if image else None
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for _ in range(3):
        det.predict([frame])
    samples = []
    for _ in range(frames):
        t0 = time.perf_counter()
        det.predict([frame])
        samples.append(1000 * (time.perf_counter() - t0))
    h, w = frame.shape[:2]
    return {
        "median_ms": round(statistics.median(samples), 1),
        "frames": frames,
        "frame": f"{w}x{h}",
    }


def _sample_image(figures: dict[str, Any] | None) -> Path | None:
    """The first image of the evaluated split, to time on a real frame."""
    if not figures:
        return None
    from training.data_yaml import load_data_yaml
    from training.labels import list_images

    try:
        return list_images(load_data_yaml(figures["data"])[figures["split"]])[0]
    except (OSError, ValueError, KeyError):
        return None


def _run_facts(run: Path | None) -> dict[str, Any]:
    if run is None or not run.is_dir():
        return {}
    facts: dict[str, Any] = {"run": _rel(run)}
    args_file = run / "args.yaml"
    if args_file.is_file():
        facts["args"] = yaml.safe_load(args_file.read_text())
    ours = run / "siteguard_train.json"
    if ours.is_file():
        facts["siteguard"] = json.loads(ours.read_text())
    results = run / "results.csv"
    if results.is_file():
        with results.open() as handle:
            rows = list(csv.DictReader(handle))
        if rows:
            facts["epochs_done"] = len(rows)
            facts["last"] = {k.strip(): v for k, v in rows[-1].items()}
    return facts


def data_recipe(facts: dict[str, Any]) -> list[str]:
    """The `siteguard dataset` commands that built the run's training data (its manifest's
    `recipe`); none for a dataset used as published."""
    ours = facts.get("siteguard") or {}
    data = ours.get("data") or (facts.get("args") or {}).get("data")
    if not data or not Path(data).is_file():
        return []
    from training.manifest import read_manifest

    return list((read_manifest(Path(data).parent) or {}).get("recipe", []))


def train_command(facts: dict[str, Any]) -> str | None:
    """The `siteguard train` line that made the run (from our record, else Ultralytics' args)."""
    ours, args = facts.get("siteguard"), facts.get("args")
    if ours:
        parts = [f"--data {ours['data']}", f"--base-weights {ours['base_weights']}"]
        keys = ("imgsz", "batch", "epochs", "hours", "fraction", "freeze", "close_mosaic",
                "optimizer", "lr0", "warmup_epochs")  # fmt: skip
        for key in keys:
            value = ours.get(key)
            if value not in (None, "None") and (key, value) != ("optimizer", "auto"):
                parts.append(f"--{key.replace('_', '-')} {value}")
        if ours.get("cos_lr") == "True":
            parts.append("--cos-lr")
        parts.append(f"--name {ours.get('name')}")
        return "siteguard train " + " ".join(parts)
    if args:
        parts = [f"--data {_original_data(args['data'])}", f"--base-weights {args['model']}"]
        parts += [f"--imgsz {args['imgsz']}", f"--batch {args['batch']}"]
        parts += [f"--epochs {args['epochs']}"]
        if args.get("time"):
            parts.append(f"--hours {args['time']}")
        parts += [f"--close-mosaic {args['close_mosaic']}", f"--name {args['name']}"]
        return "siteguard train " + " ".join(parts)
    return None


def _architecture(meta: dict[str, str]) -> str:
    """'... Ultralytics YOLO11n model ...' -> 'Ultralytics YOLO11n'."""
    return architecture(meta.get("description", ""))


def architecture(description: str) -> str:
    """The Ultralytics architecture named in an ONNX description ('Ultralytics YOLO11n')."""
    found = re.search(r"Ultralytics YOLO\w*", description)
    return found.group(0) if found else "Ultralytics YOLO"


# Licences of the data sets a model may be trained on, by their folder under ../shared/data:
# a model trained on CC BY data carries the attribution wherever it ships.
DATA_SOURCES = {
    "hardhat-workers": "Hard Hat Workers (Northeastern University, China; Harvard Dataverse "
    "doi:10.7910/DVN/7CBGOS, Roboflow export hard-hat-workers-ea2v7 v1): public domain",
    "construction-site-safety": "Construction Site Safety (Roboflow Universe, "
    "roboflow-universe-projects, export v28): CC BY 4.0, "
    "https://creativecommons.org/licenses/by/4.0/",
}


def training_sources(facts: dict[str, Any]) -> list[str]:
    """The known data sources behind a run's train images (their symlinks' targets)."""
    args = facts.get("args") or {}
    data = args.get("data")
    if not data or not Path(data).is_file():
        return []
    from training.data_yaml import load_data_yaml
    from training.labels import list_images

    try:
        train = load_data_yaml(data).get("train")
        images = list_images(train) if train else []
    except (OSError, ValueError):
        return []
    parts = {part for image in images for part in image.resolve().parts}
    return [text for folder, text in DATA_SOURCES.items() if folder in parts]


def _data_lines(fp32: dict[str, Any] | None, model_dataset: str | None) -> list[str]:
    """Counts per split of the evaluation dataset, from its manifest (computed if absent)."""
    if not fp32:
        return ["- Unknown: no evaluation JSON."]
    from training.datasets import dataset_info

    data = Path(fp32["data"])
    try:
        manifest = dataset_info(data)
    except (OSError, ValueError) as exc:
        return [f"- `{_rel(data)}`: not readable here ({exc})."]
    lines = [
        f"- `{_rel(data)}`, version `{manifest['version']}`"
        + (
            "" if manifest["version"] == model_dataset else " (the model's dataset version differs)"
        ),
        "",
        "| split | images | " + " | ".join(manifest["classes"]) + " |",
        "|---|---:|" + "---:|" * len(manifest["classes"]),
    ]
    for split, row in manifest["splits"].items():
        boxes = " | ".join(str(row["boxes"][c]) for c in manifest["classes"])
        lines.append(f"| {split} | {row['images']} | {boxes} |")
    return lines


def _original_data(data: str) -> str:
    """`siteguard train` hands Ultralytics NAME-data/data.resolved.yaml; point back at the
    dataset's own data.yaml when it sits in the resolved file's `path`."""
    resolved = Path(data)
    if resolved.name == "data.resolved.yaml" and resolved.is_file():
        root = (yaml.safe_load(resolved.read_text()) or {}).get("path")
        if root and (Path(root) / "data.yaml").is_file():
            return _rel(Path(root) / "data.yaml")
    return data


def _figures_table(
    fp32: dict[str, Any], int8: dict[str, Any] | None, timing: bool = True
) -> list[str]:
    head = "| figure | fp32 |" + (" int8 | delta (points) |" if int8 else "")
    rule = "|---|---:|" + ("---:|---:|" if int8 else "")
    lines = [head, rule]
    rows = [
        ("mAP50", "map50"),
        ("mAP50-95", "map50_95"),
        ("worker accuracy", "worker_accuracy"),
        ("strict worker accuracy (stray helmet boxes count too)", "strict_worker_accuracy"),
        ("violation precision", "violation_precision"),
        ("violation recall", "violation_recall"),
    ]
    for label, key in rows:
        if key not in fp32:
            continue  # evaluation JSON written before the figure existed
        line = f"| {label} | {fp32[key]:.3f} |"
        if int8:
            line += f" {int8[key]:.3f} | {100 * (int8[key] - fp32[key]):+.1f} |"
        lines.append(line)
    if not timing:
        return lines
    line = f"| inference ms/image (during evaluation) | {fp32['inference_ms_per_image']:.1f} |"
    if int8:
        line += f" {int8['inference_ms_per_image']:.1f} | |"
    lines.append(line)
    return lines


def _per_class_table(figures: dict[str, Any]) -> list[str]:
    lines = ["| class | instances | AP50 | precision | recall |", "|---|---:|---:|---:|---:|"]
    for name, row in figures["per_class"].items():
        lines.append(
            f"| {name} | {row['instances']} | {row['ap50']:.3f} | {row['precision']:.3f} | "
            f"{row['recall']:.3f} |"
        )
    return lines


def _cross_source_lines(fp32: dict[str, Any], int8: dict[str, Any] | None) -> list[str]:
    """The second source, scored the same way (`siteguard export --cross-data`)."""
    cross = fp32.get("cross_source")
    if not cross:
        return []
    cross8 = (int8 or {}).get("cross_source")
    return [
        "",
        "### Another source: images of sites the model was not tuned on",
        "",
        f"On the **{cross['split']}** split of `{_rel(Path(cross['data']).parent)}` "
        f"({cross['images']} images, {cross['workers']} workers; split by group, so no clip or "
        f"source photo of it was trained or tuned on), at the same thresholds. Matching: "
        f"**{cross.get('matching', 'iou')}** (this source boxes hats and hair, not whole heads; "
        "see `training/worker_metrics.py`; the dataset version is rebuilt by the command in "
        "docs/iteration.md). One worker is "
        f"{100 / max(cross['workers'], 1):.1f} points of worker accuracy here.",
        "",
        *_figures_table(cross, cross8, timing=False),
        "",
        *_per_class_table(cross),
    ]


def render(options: CardOptions) -> str:
    """The card's markdown text."""
    from detector.inference import file_sha256, format_class_conf

    model = options.model
    meta = read_metadata(model)
    names = ast.literal_eval(meta.get("names", "{}"))
    fp32 = _load_eval(model, options.evaluation, meta.get("siteguard_version"))
    int8_eval = None
    if options.int8:
        int8_eval = _load_eval(
            options.int8, None, read_metadata(options.int8).get("siteguard_version")
        )
    facts = _run_facts(options.run)
    size_mb = model.stat().st_size / 1e6
    lines = [
        f"# Model card: {model.name}",
        "",
        "Generated by `siteguard model-card` from the model's metadata, its evaluation JSON and "
        "its training run; regenerate it rather than editing it.",
        "",
        "| | |",
        "|---|---|",
        f"| version | `{meta.get('siteguard_version', 'unknown')}` |",
        f"| file | `{_rel(model)}` ({size_mb:.1f} MB, sha256 `{file_sha256(model)[:16]}…`) |",
        f"| architecture | {_architecture(meta)} (Ultralytics {meta.get('version', '?')}) |",
        f"| input | {meta.get('imgsz', '?')} letterboxed RGB, dynamic batch |",
        f"| dataset version | `{meta.get('dataset_version', 'unknown')}` |",
        "| licence | AGPL-3.0 (Ultralytics YOLO weights and code) |",
        "",
        "## Classes",
        "",
    ]
    lines += [f"- `{i}` **{n}**: {CLASS_MEANING.get(n, n)}" for i, n in sorted(names.items())]
    lines += ["", "## Data", ""] + _data_lines(fp32, meta.get("dataset_version"))
    lines += ["", "## Training", ""]
    blend = json.loads(meta["siteguard_blend"]) if meta.get("siteguard_blend") else None
    if blend:
        lines.append(
            f"- Weights: `{blend['base']}` + {blend['alpha']} x (`{blend['tuned']}` - "
            f"`{blend['base']}`), a blend of the base and its fine-tune (`siteguard blend`, "
            "WiSE-FT; alpha chosen on both validation sets). The run below is the fine-tune."
        )
    if facts:
        args = facts.get("args", {})
        lines.append(
            f"- Run folder: `{facts['run']}`; epochs completed: {facts.get('epochs_done', '?')}"
        )
        if args:
            keys = ("imgsz", "batch", "epochs", "time", "fraction", "freeze", "close_mosaic",
                    "optimizer", "lr0", "warmup_epochs", "cos_lr")  # fmt: skip
            settings = ", ".join(
                f"{k} {args[k]}" for k in (*keys, "device", "seed") if args.get(k) is not None
            )
            lines.append(f"- Base weights `{args.get('model')}`; {settings}")
        last = facts.get("last")
        if last:
            keys = [k for k in last if k.startswith("metrics/")]
            lines.append(
                "- Last epoch on the validation split: "
                + ", ".join(f"{k.removeprefix('metrics/')} {float(last[k]):.3f}" for k in keys)
            )
    else:
        lines.append("- No training run folder was given (`--run`).")
    lines += ["", "## Accuracy", ""]
    if fp32:
        lines.append(
            f"On the **{fp32['split']}** split of `{_rel(Path(fp32['data']).parent)}` "
            f"({fp32['images']} images, {fp32['workers']} workers), through "
            f"`detector.inference.OnnxDetector` (the production code path). mAP by "
            f"{fp32['map_implementation']} at conf {fp32['map_conf']}; the rest at the operating "
            f"{_thresholds_text(fp32)}, IoU {fp32['match_iou']} (definitions: "
            f"`training/worker_metrics.py`)."
        )
        lines += [""] + _figures_table(fp32, int8_eval) + [""] + _per_class_table(fp32)
        lines += _cross_source_lines(fp32, int8_eval)
    else:
        lines.append("Not evaluated: run `siteguard evaluate --json` and pass `--eval`.")
    lines += ["", "## Speed", ""]
    sample = _sample_image(fp32)
    timing = time_model(model, options.timing_frames, sample) if options.timing_frames else None
    if timing:
        what = f"a {timing['frame']} test image" if sample else f"a {timing['frame']} frame"
        line = (
            f"- fp32: {timing['median_ms']} ms per image on {what} at batch 1 (median of "
            f"{timing['frames']} runs, OnnxDetector incl. letterbox, decode and NMS)"
        )
        lines.append(line)
        if options.int8:
            t8 = time_model(options.int8, options.timing_frames, sample)
            lines.append(f"- int8: {t8['median_ms']} ms per image, same image and conditions")
        lines.append(
            f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, onnxruntime CPU; "
            "measured while other work may share the CPUs, so treat as pessimistic."
        )
    sources = training_sources(facts)
    if sources:
        lines += ["", "## Data sources and attribution", ""]
        lines += [f"- {source}" for source in sources]
    lines += ["", "## Limits", ""]
    lines += [
        "- Trained on public photos (Hard Hat Workers: small daytime photos of about 500x333; "
        "where listed above, Construction Site Safety: mixed sites, video frames, close-ups). "
        "Expect lower figures on your own cameras until you retrain with reviewed samples "
        "from them (docs/iteration.md).",
        "- `person` is rarely labelled in the data; do not rely on it for counting people.",
        "- No harness or vest classes: this model only judges hard hats.",
        "- Small, distant or occluded heads are the main source of misses; non-hard-hat "
        "headwear (caps, hoods) can be confused with helmets.",
        "- Figures are at one operating point; other thresholds trade precision for recall.",
    ]
    lines += ["", "## Reproduce", "", "```sh"]
    lines += data_recipe(facts)
    command = train_command(facts)
    if command:
        lines.append(command)
    if blend:
        from training.blend import blend_command

        lines.append(blend_command(blend, blend["out"]))
    export_args = meta.get("siteguard_export")
    if export_args:
        exported = json.loads(export_args)
        best = f"{facts['run']}/weights/best.pt" if facts else None
        if best and not blend and exported.get("weights") not in (None, best):
            lines.append(f"cp {best} {exported['weights']}")  # the run's weights, shipped
        lines.append(exported["command"])
    if fp32:
        cmd = (
            f"siteguard evaluate --model {_rel(model)} --data {_rel(fp32['data'])} "
            f"--split {fp32['split']} --conf {fp32.get('conf', 0.25)} --json"
        )
        if fp32.get("class_conf"):
            cmd += f" --class-conf {format_class_conf(fp32['class_conf'])}"
        if fp32.get("class_map"):
            cmd += f" --class-map {fp32['class_map']}"
        lines.append(cmd)
    lines.append(f"siteguard model-card --model {_rel(model)}" + _card_args(options))
    lines += ["```", ""]
    return "\n".join(lines)


def _card_args(options: CardOptions) -> str:
    parts = ""
    if options.int8:
        parts += f" --int8 {_rel(options.int8)}"
    if options.run:
        parts += f" --run {_rel(options.run)}"
    return parts + f" --out {_rel(options.out)}"


def write_card(options: CardOptions) -> Path:
    if not options.model.is_file():
        raise FileNotFoundError(f"model not found: {options.model}")
    if options.int8 is not None and not options.int8.is_file():
        raise FileNotFoundError(f"int8 model not found: {options.int8}")
    text = render(options)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(text)
    return options.out


def _thresholds_text(figures: dict[str, Any]) -> str:
    """`threshold conf 0.3`, or the per-class thresholds when the model has them."""
    class_conf = figures.get("class_conf") or {}
    if not class_conf:
        return f"threshold conf {figures['conf']}"
    per_class = ", ".join(f"{name} {conf}" for name, conf in class_conf.items())
    return f"thresholds {per_class} (other classes {figures['conf']})"
