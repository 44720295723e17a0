"""Choose a model's per-class operating thresholds on TWO validation sets at once.

One threshold pair must serve the photos the model was trained on and sites it has not seen.
For every head x helmet pair of the grid this scores the model on the Hard Hat Workers val split
(IoU matching, `worker_accuracy`: the figure the benchmark target is set on) and on the second
source's val groups (coverage matching, `strict_worker_accuracy`: stray helmet boxes count as
false alarms, as the kept-aside set's evaluator counts them), and picks the pair with the best
mean of the two. Never run it on a test split.

    .venv/bin/python bench/choose_thresholds.py --model runs/.../best.onnx \\
        --data ../shared/data/hardhat-workers/data.yaml --cross data/css/data.yaml

Prints the top rows and the chosen pair as `--class-conf` text; `--json FILE` keeps them all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# From the detector's `model.conf` floor (0.2) up: a detection below it never reaches the
# tracker, so a threshold below it would score boxes the product never sees.
GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def grid_rows(model: Path, data: Path, matching: str) -> dict[tuple[float, float], dict]:
    from training.evaluate import EvalOptions, evaluate

    figures = evaluate(
        EvalOptions(model, data, split="val", class_conf_grid=GRID, matching=matching)
    )
    return {(r["head"], r["helmet"]): r for r in figures["class_conf_grid"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="benchmark source (val split)")
    parser.add_argument("--cross", type=Path, required=True, help="second source (val split)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    main_rows = grid_rows(args.model, args.data, "iou")
    cross_rows = grid_rows(args.model, args.cross, "coverage")
    table = []
    for pair, row in main_rows.items():
        other = cross_rows[pair]
        score = (row["worker_accuracy"] + other["strict_worker_accuracy"]) / 2
        table.append({"head": pair[0], "helmet": pair[1], "score": round(score, 4),
                      "main": row, "cross": other})  # fmt: skip
    table.sort(key=lambda r: (-r["score"], -r["head"]))
    print("| head | helmet | mean | benchmark val worker acc. | cross val strict acc. | "
          "cross val recall | cross val worker acc. |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in table[:10]:
        print(
            f"| {r['head']} | {r['helmet']} | {r['score']:.3f} | "
            f"{r['main']['worker_accuracy']:.3f} | {r['cross']['strict_worker_accuracy']:.3f} | "
            f"{r['cross']['violation_recall']:.3f} | {r['cross']['worker_accuracy']:.3f} |"
        )
    best = table[0]
    print(f"\nchosen: --class-conf head={best['head']},helmet={best['helmet']}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
