"""FER2013 accuracy of non-ideal chips: without fine-tuning, after hardware-aware (noise-injected)
training, after hardware-in-the-loop fine-tuning, over device variation and stuck-at rates.

    python experiments/chip_sweep.py [--sigmas 0 0.05 0.1 0.2 0.3] [--stuck 0 0.01 0.05]
        [--steps 60] [--batch-size 32] [--eval-images 512] [--preset near_ideal]
        [--data PATH] [--out results/chip_sweep]

For every (sigma, stuck-at rate) one chip is drawn (``--chip-seed``; half the stuck devices
ON, half OFF) and programmed by write-verify from the shipped model's conductances:

- *without*: that chip as programmed;
- *noise*: the targets trained for ``--steps`` steps on a fresh chip of the same variation
  every step (``FinetuneConfig.mode = "noise"``), then programmed onto the chip;
- *chip*: the targets trained for ``--steps`` steps on the chip itself, re-programmed after
  every step (hardware in the loop).

Both trainings start from the shipped model with the same batches, learning rate and steps.
Accuracies are on one fixed random sample of PrivateTest (``--eval-images``, 0 for all
3,589), the same for the software model and every chip. Results go to ``OUT/results.json``
after every point, so an interrupted sweep continues where it stopped (finished points are
kept, an unfinished training resumes from its checkpoint); ``OUT/chip_sweep.png`` plots
accuracy against sigma, one panel per stuck-at rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from memjax.cli import DEFAULT_CHECKPOINT  # noqa: E402
from memjax.hardware.chip import ChipVariation, evaluation_key, fabricate  # noqa: E402
from memjax.hardware.config import PRESETS  # noqa: E402
from memjax.hardware.memristive import convert  # noqa: E402
from memjax.provenance import code_version, provenance  # noqa: E402
from memjax.reproduce import find_data  # noqa: E402
from memjax.training.checkpoint import load_model, write_json_atomic  # noqa: E402
from memjax.training.finetune import (  # noqa: E402
    FinetuneConfig,
    chip_accuracy,
    deployed_chip,
    finetune,
)

MODES = ("without", "noise", "chip")


def point_name(sigma: float, stuck: float) -> str:
    return f"sigma{sigma:g}_stuck{stuck:g}"


def sample(split, count: int):
    if not count or count >= len(split):
        return split.images, split.labels
    chosen = np.sort(np.random.default_rng(0).choice(len(split), count, replace=False))
    return split.images[chosen], split.labels[chosen]


def trained_accuracy(chip, mode, data, images, labels, run_dir: Path, config, chip_key):
    """Train in ``mode`` (resuming a run left unfinished) and measure on the chip."""
    checkpoints = run_dir / "checkpoints"
    resume = checkpoints.exists() and any(p.name.isdigit() for p in checkpoints.iterdir())
    state = finetune(
        chip,
        data.split("train").images,
        data.split("train").labels,
        run_dir,
        FinetuneConfig(**{**config, "mode": mode}),
        resume=resume,
    )
    deployed = deployed_chip(state, chip.variation, chip_key, mode)
    del state
    return chip_accuracy(deployed, images, labels, key=evaluation_key(chip_key))


def plot(results: dict, path: Path) -> None:
    stucks = sorted({p["stuck_at_rate"] for p in results["points"].values()})
    fig, axes = plt.subplots(
        1, len(stucks), figsize=(4.2 * len(stucks), 3.6), squeeze=False, sharex=True
    )
    styles = {"without": "o-", "noise": "s--", "chip": "^-"}
    labels = {"without": "no fine-tuning", "noise": "noise-injected", "chip": "in the loop"}
    for ax, stuck in zip(axes[0], stucks, strict=True):
        points = sorted(
            (p for p in results["points"].values() if p["stuck_at_rate"] == stuck),
            key=lambda p: p["variation"],
        )
        for mode in MODES:
            have = [p for p in points if mode in p["accuracy"]]
            if have:
                sigmas = [100 * p["variation"] for p in have]
                accuracy = [100 * p["accuracy"][mode] for p in have]
                ax.plot(sigmas, accuracy, styles[mode], label=labels[mode])
        ax.axhline(100 * results["software_accuracy"], color="k", lw=0.8, label="software")
        ax.set_title(f"stuck-at {100 * stuck:g} %")
        ax.set_xlabel("device variation sigma (%)")
        ax.set_ylim(0, 75)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("PrivateTest accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="near_ideal")
    parser.add_argument("--data", help="FER2013 (default: $MEMJAX_FER2013 or ../shared)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--stuck", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--eval-images", type=int, default=512)
    parser.add_argument("--chip-seed", type=int, default=0)
    parser.add_argument("--out", default="results/chip_sweep")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, said = find_data(args.data)
    if data is None:
        raise SystemExit(f"chip_sweep: {said}")
    print(said)
    images, labels = sample(data.split("private_test"), args.eval_images)
    model, _ = load_model(Path(args.checkpoint))
    design = convert(model, PRESETS[args.preset]())
    config = {"steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.lr}
    config["checkpoint_every"] = max(1, args.steps // 4)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"points": {}}
    settings = {
        "checkpoint": args.checkpoint,
        "preset": args.preset,
        "chip_seed": args.chip_seed,
        "finetune": config,
        "evaluated_on": {"split": "private_test", "images": len(images), "sample_seed": 0},
    }
    if results.get("settings", settings) != settings:
        raise SystemExit(f"{results_path} was made with other settings; choose another --out")
    results["settings"] = settings
    results["provenance"] = provenance()
    if "software_accuracy" not in results:
        predictions = [
            np.asarray(model(images[i : i + 256])).argmax(-1) for i in range(0, len(images), 256)
        ]
        results["software_accuracy"] = float(np.mean(np.concatenate(predictions) == labels))
    print(f"software model: {results['software_accuracy']:.4f} on {len(images)} images")
    key = jax.random.key(args.chip_seed)
    fabricate_jit = eqx.filter_jit(fabricate)
    # every point without fine-tuning first (cheap), then both trainings, stuck-at rate by rate
    order = [("without", stuck) for stuck in args.stuck if "without" in args.modes]
    order += [(m, stuck) for stuck in args.stuck for m in args.modes if m != "without"]
    for mode, stuck in order:
        for sigma in args.sigmas:
            name = point_name(sigma, stuck)
            point = results["points"].setdefault(
                name,
                {"variation": sigma, "stuck_at_rate": stuck, "accuracy": {}, "seconds": {}},
            )
            if mode in point["accuracy"]:
                continue
            started = time.time()
            variation = ChipVariation(
                variation=sigma, stuck_on_rate=stuck / 2, stuck_off_rate=stuck / 2
            )
            chip, _ = fabricate_jit(design, variation, key)
            if mode == "without":
                accuracy = chip_accuracy(chip, images, labels, key=evaluation_key(key))
            else:
                run_dir = out / "runs" / name / mode
                accuracy = trained_accuracy(chip, mode, data, images, labels, run_dir, config, key)
            point["accuracy"][mode] = accuracy
            point["seconds"][mode] = round(time.time() - started, 1)
            # a sweep continued under another commit says so, point by point
            point.setdefault("code_versions", {})[mode] = code_version()
            print(f"{name} {mode}: {accuracy:.4f} ({point['seconds'][mode]} s)", flush=True)
            write_json_atomic(results_path, results)
            plot(results, out / "chip_sweep.png")
    write_json_atomic(results_path, results)
    plot(results, out / "chip_sweep.png")
    print(f"wrote {results_path} and {out / 'chip_sweep.png'}")


if __name__ == "__main__":
    main()
