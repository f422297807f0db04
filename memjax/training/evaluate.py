"""Accuracy, per-class accuracy and confusion matrix of a model checkpoint on a FER2013 split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memjax.data import CLASS_NAMES, FER2013
from memjax.errors import MemjaxError
from memjax.network.shufflenet import Activations
from memjax.training import steps
from memjax.training.checkpoint import load_model, save_model, write_json_atomic


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts with true class along rows and predicted class along columns."""
    k = len(CLASS_NAMES)
    return np.bincount(labels.astype(np.int64) * k + predictions, minlength=k * k).reshape(k, k)


TEST_TIME_AUGMENTATIONS = ("none", "flip")
"""``"none"``: one inference per image. ``"flip"``: the logits of the image and of its mirror
image averaged (two inferences per image, on a chip two passes: twice the latency and energy
of one inference); the training augmentation flips faces, so the network has learned both."""


def own_activations(model, payload: dict) -> Activations | None:
    """The nonlinearities a checkpoint was trained through: for a model trained through a
    circuit (``memjax train --circuit P``, recorded in its ``trained`` payload) that
    circuit's twin (:func:`memjax.hardware.twin.circuit_activations`), whose curves its
    weights expect (its biases sit on the diodes' knees); None (the software ones) else."""
    circuit = ((payload.get("trained") or {}).get("train") or {}).get("circuit")
    if circuit is None:
        return None
    from memjax.hardware.config import PRESETS
    from memjax.hardware.twin import circuit_activations

    return circuit_activations(PRESETS[circuit](), model.config)


def evaluate_model(
    checkpoint: Path,
    data: FER2013,
    split: str,
    expected_width: float | None = None,
    tta: str = "none",
    activations=None,
) -> dict:
    """The report written by ``memjax evaluate --json``; ``tta``: one of
    :data:`TEST_TIME_AUGMENTATIONS`; ``activations``: nonlinearities that replace the model's
    (e.g. a circuit's, :func:`memjax.hardware.twin.circuit_activations`); None: those it was
    trained through (:func:`own_activations`)."""
    if tta not in TEST_TIME_AUGMENTATIONS:
        raise MemjaxError(
            f"test-time augmentation {tta!r}: expected one of {TEST_TIME_AUGMENTATIONS}"
        )
    model, payload = load_model(Path(checkpoint), expected_width)
    if activations is None:
        activations = own_activations(model, payload)
    _, eval_graph, params, batch_stats = steps.split_model(model)
    chosen = data.split(split)
    predict = steps.make_predict(eval_graph, activations)
    logits = steps.predict_logits(predict, params, batch_stats, chosen.images)
    if tta == "flip":
        mirrored = np.ascontiguousarray(chosen.images[:, :, ::-1])
        logits = (logits + steps.predict_logits(predict, params, batch_stats, mirrored)) / 2
    predictions = logits.argmax(-1)
    shifted = np.asarray(logits, np.float64) - np.max(logits, -1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), -1, keepdims=True))
    loss = float(-np.mean(log_p[np.arange(len(chosen)), chosen.labels]))
    matrix = confusion_matrix(chosen.labels, predictions)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        "checkpoint": str(checkpoint),
        "split": split,
        "data": data.source,
        "width": model.config.width,
        "n": len(chosen),
        "tta": tta,
        "accuracy": float(np.mean(predictions == chosen.labels)),
        "loss": loss,  # mean cross-entropy of the (averaged) logits, nats
        "per_class_accuracy": {c: float(a) for c, a in zip(CLASS_NAMES, per_class)},
        "confusion_matrix": matrix.tolist(),
        "classes": list(CLASS_NAMES),
        "trained": payload.get("trained"),
    }


def export_model(
    source: Path, destination: Path, data: FER2013, activations: Activations | None = None
) -> Path:
    """Copy a model checkpoint for deployment, recording its accuracy on both test splits
    (through ``activations``, the circuit's twin, for a model trained through a circuit).

    The record lets anyone check later that loading the exported model reproduces it.
    """
    model, payload = load_model(Path(source))
    evaluation = {"data": data.source, "through_circuit": activations is not None}
    for split in ("public_test", "private_test"):
        plain = evaluate_model(Path(source), data, split, activations=activations)
        evaluation[f"{split}_accuracy"] = plain["accuracy"]
        flipped = evaluate_model(Path(source), data, split, tta="flip", activations=activations)
        evaluation[f"{split}_accuracy_tta_flip"] = flipped["accuracy"]
    _, _, params, batch_stats = steps.split_model(model)
    info = {key: value for key, value in payload.items() if key not in ("model", "evaluation")}
    return save_model(
        Path(destination), model.config, params, batch_stats, {**info, "evaluation": evaluation}
    )


def print_report(report: dict) -> None:
    views = " (logits averaged with the mirror image)" if report.get("tta") == "flip" else ""
    print(
        f"{report['split']}: accuracy {report['accuracy']:.4f} on {report['n']} images{views} "
        f"({report['checkpoint']})"
    )
    width = max(len(c) for c in CLASS_NAMES) + 2
    print(
        "true \\ predicted".ljust(width + 4)
        + "".join(f"{c[:7]:>8}" for c in CLASS_NAMES)
        + "   accuracy"
    )
    for name, row in zip(CLASS_NAMES, report["confusion_matrix"]):
        accuracy = report["per_class_accuracy"][name]
        print(f"{name:<{width + 4}}" + "".join(f"{n:>8}" for n in row) + f"   {accuracy:8.4f}")


def write_report(report: dict, path: Path) -> list[Path]:
    """The JSON report and, beside it, the confusion matrix as a PNG."""
    write_json_atomic(path, report)
    figure_path = path.with_suffix(".confusion.png")
    plot_confusion(report, figure_path)
    return [path, figure_path]


def plot_confusion(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(report["confusion_matrix"], dtype=float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6.4, 5.4))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            axes.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if normalised[i, j] > 0.5 else "black",
            )
    axes.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(
        f"FER2013 {report['split']}: accuracy {report['accuracy']:.2%} (n = {report['n']})"
        + (", flip-averaged" if report.get("tta") == "flip" else "")
    )
    figure.colorbar(image, ax=axes, label="fraction of true class")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
