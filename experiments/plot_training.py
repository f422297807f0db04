"""Training curves of a run: loss, Training and PublicTest accuracy per epoch.

    python experiments/plot_training.py RUN_DIR_OR_METRICS_JSONL [--out training.png]

The shipped model's log is checkpoints/shufflenetv2-1.0x/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a run folder or its metrics.jsonl")
    parser.add_argument("--out", type=Path, default=Path("training.png"))
    args = parser.parse_args()
    path = args.source / "metrics.jsonl" if args.source.is_dir() else args.source
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [r["train_loss"] for r in records], label="Training (augmented)")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("cross-entropy (label smoothing 0.1)")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [r["train_accuracy"] for r in records], label="Training (augmented)")
    accuracy_axes.plot(epochs, [r["public_test_accuracy"] for r in records], label="PublicTest")
    best = max(records, key=lambda r: r["public_test_accuracy"])
    accuracy_axes.axvline(best["epoch"], color="gray", linestyle=":", label="best (kept)")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("top-1 accuracy")
    accuracy_axes.legend()
    figure.suptitle(
        f"{path.parent.name}: best PublicTest {best['public_test_accuracy']:.2%} "
        f"at epoch {best['epoch']}"
    )
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
