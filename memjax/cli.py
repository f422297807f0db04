"""The ``memjax`` command line: ``reproduce``, ``data convert``, ``data info``, ``train``,
``evaluate``, ``finetune``.

Every user-facing failure is a :class:`MemjaxError`, printed as one line with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memjax.errors import MemjaxError

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "shufflenetv2-1.0x"
"""The shipped model (trained on FER2013 Training, selected on PublicTest)."""
CIRCUIT_TRAINED = {
    "paper_plain_diode_relu": DEFAULT_CHECKPOINT.parent / "shufflenetv2-1.0x-plain-diode",
}
"""Shipped models trained through a preset's circuit (``memjax train --circuit``), by preset:
what ``reproduce`` and ``finetune`` use for that preset when no --checkpoint is given."""


def _reproduce(args) -> None:
    from memjax.reproduce import reproduce

    if args.compile_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(Path(args.compile_cache).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    reproduce(
        Path(args.out),
        Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT,
        preset=args.preset,
        data_path=args.data,
        dc_images=args.dc_images,
        transient_images=args.transient_images,
        gbw_ghz=tuple(args.gbw),
        seed=args.seed,
        rtol=args.rtol,
        atol=args.atol,
        transient_crop=args.transient_crop,
        circuit_trained={} if args.checkpoint else CIRCUIT_TRAINED,
        power_images=args.power_images,
        target_latency_ns=args.target_latency_ns,
        stepping=args.stepping,
    )


def _data_convert(args) -> None:
    from memjax.data import load_fer2013, save_npz

    data = load_fer2013(args.source)
    path = save_npz(data, args.destination)
    counts = ", ".join(f"{name} {len(data.split(name))}" for name in data.present)
    absent = f"; absent: {', '.join(data.absent)}" if data.absent else ""
    print(f"wrote {path} ({counts}{absent})")


def _data_info(args) -> None:
    from memjax.data import load_fer2013

    info = load_fer2013(args.path).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    classes = info["classes"]
    print(f"FER2013 from {info['source']}")
    print(f"{'split':<14}{'total':>7}" + "".join(f"{c:>10}" for c in classes))
    for name, split in info["splits"].items():
        print(f"{name:<14}{split['total']:>7}" + "".join(f"{n:>10}" for n in split["per_class"]))
    if info["absent"]:
        print(f"absent (not in this file): {', '.join(info['absent'])}")


def _train(args) -> None:
    from memjax.data import load_fer2013
    from memjax.network import ShuffleNetConfig
    from memjax.training.augment import AugmentConfig
    from memjax.training.checkpoint import read_model_config
    from memjax.training.evaluate import evaluate_model, export_model, print_report
    from memjax.training.loop import TrainConfig, train, twin_activations
    from memjax.training.steps import OptimizerConfig

    data = load_fer2013(args.data)
    if args.export:  # the exported model records its accuracy on both test splits
        data.split("private_test")
    if args.init_from:
        model_config, _ = read_model_config(Path(args.init_from))
        if args.width is not None and args.width != model_config.width:
            raise MemjaxError(
                f"--init-from {args.init_from} holds a {model_config.width}x model, "
                f"but --width {args.width} was asked for"
            )
    else:
        model_config = ShuffleNetConfig(
            width=args.width or 1.0, zero_init_branch=args.zero_init_branch
        )
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        keep=args.keep,
        optimizer=OptimizerConfig(
            name=args.optimizer,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            warmup_epochs=args.warmup_epochs,
        ),
        augment=AugmentConfig(erase_probability=args.erase_probability),
        init_from=str(Path(args.init_from).absolute()) if args.init_from else None,
        circuit=args.circuit,
        circuit_phase_epochs=args.circuit_phase_epochs,
        circuit_recentre=args.recentre,
    )
    result = train(
        data,
        Path(args.run_dir),
        model_config,
        train_config,
        resume=args.resume,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    best = result["best"]
    if best["epoch"] == 0:  # only epochs on the circuit as it is compete
        print(f"no best model yet (epochs done: {result['epochs_done']}): continue with --resume")
        return
    print(f"best PublicTest accuracy {best['public_test_accuracy']:.4f} at epoch {best['epoch']}")
    best_dir = Path(args.run_dir) / "best"
    # the run's own configuration (a resumed run's is in its run.json, not in the arguments)
    ran = result["train_config"]
    activations = twin_activations(ran, result["model_config"])
    if "private_test" not in data.present:  # training needs Training and PublicTest only
        print(f"{data.source} holds no private_test split: the best model is not scored on it")
    else:
        if activations is not None:
            print(f"through the {ran.circuit} circuit's steady-state nonlinearities:")
        report = evaluate_model(best_dir, data, "private_test", activations=activations)
        print_report(report)
    if args.export:
        export_model(best_dir, Path(args.export), data, activations)
        print(f"exported the best model to {args.export}")


def _evaluate(args) -> None:
    from memjax.data import load_fer2013
    from memjax.training.evaluate import evaluate_model, print_report, write_report

    checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    data = load_fer2013(args.data)
    report = evaluate_model(checkpoint, data, args.split, expected_width=args.width, tta=args.tta)
    print_report(report)
    if args.json:
        written = write_report(report, Path(args.json))
        print("wrote " + ", ".join(str(p) for p in written))


def _finetune(args) -> None:
    from memjax.data import load_fer2013
    from memjax.devices.programming import WriteVerify
    from memjax.hardware.chip import ChipVariation
    from memjax.training.checkpoint import write_json_atomic
    from memjax.training.finetune import FinetuneConfig, run_finetune

    data = load_fer2013(args.data)
    stuck_on = args.stuck_at * args.stuck_on_share
    variation = ChipVariation(
        variation=args.variation,
        stuck_on_rate=stuck_on,
        stuck_off_rate=args.stuck_at - stuck_on,
        read_noise=args.read_noise,
        levels=args.levels,
        programming=None if args.no_write_verify else WriteVerify(),
        wire_resistance=args.wire_resistance,
        opamp_offset=args.opamp_offset * 1e-3,
        opamp_gain_spread=args.opamp_gain_spread,
    )
    config = FinetuneConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        mode=args.mode,
        forward=args.forward,
        read_time=args.read_time * 1e-9,
        select_every=args.select_every,
    )
    if args.checkpoint:
        checkpoint = Path(args.checkpoint)
    else:
        checkpoint = CIRCUIT_TRAINED.get(args.preset, DEFAULT_CHECKPOINT)
        print(f"model: {checkpoint} (the shipped model for preset {args.preset})")
    result = run_finetune(
        checkpoint,
        data,
        Path(args.run_dir),
        args.preset,
        variation,
        config,
        chip_seed=args.chip_seed,
        evaluate_images=args.eval_images,
        resume=args.resume,
        progress=not args.no_progress,
        stop_after=args.stop_after,
        select_split=args.select_split,
        select_images=args.select_images,
        transient_images=args.transient_eval_images,
    )
    if args.json:
        write_json_atomic(Path(args.json), result)
        print(f"wrote {args.json}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memjax", description="Analog physics simulation of memristive neural networks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="FER2013: convert between forms, count").add_subparsers(
        dest="data_command", required=True
    )
    convert = data.add_parser("convert", help="fer2013.csv / image folder / .npz -> .npz")
    convert.add_argument("source", help="fer2013.csv, an image folder (train/, test/) or a .npz")
    convert.add_argument("destination", help="output .npz")
    convert.set_defaults(run=_data_convert)
    info = data.add_parser("info", help="counts per split and class")
    info.add_argument("path", help="fer2013.csv, an image folder or a .npz")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=_data_info)

    data_help = "FER2013 (.csv, image folder or .npz); default: $MEMJAX_FER2013"
    reproduce = commands.add_parser(
        "reproduce",
        help="the paper's memristive ShuffleNetV2: accuracy, latency, energy, resources",
    )
    reproduce.add_argument("--out", default="results", help="folder for results.json and figures")
    reproduce.add_argument(
        "--checkpoint",
        help="model checkpoint for every preset; default: the shipped one, and for "
        "paper_plain_diode_relu also the shipped model trained through its circuit",
    )
    reproduce.add_argument(
        "--preset",
        default="paper_plain_diode_relu",
        help="hardware preset of the transient (paper, paper_plain_diode_relu, "
        "paper_super_diodes, paper_calibrated, paper_calibrated_driven, near_ideal); every "
        "preset's steady state is reported, paper_calibrated_driven's only when it is this "
        "one (its exact direct-row steady state takes ~3 minutes for 384 images)",
    )
    reproduce.add_argument(
        "--data", help=data_help + ", else ../shared/data/fer2013/fer2013.npz if present"
    )
    reproduce.add_argument(
        "--dc-images", type=int, default=384, help="random PrivateTest images for the accuracies"
    )
    reproduce.add_argument(
        "--transient-images", type=int, default=1, help="images for the whole-network transient"
    )
    reproduce.add_argument(
        "--gbw",
        type=float,
        nargs="*",
        default=[],
        help="op-amp GBW values (GHz) besides the preset's for the latency-power sweep, "
        "one more whole transient each (default none: the 2 GHz point took ~200 s on 2 "
        "cores)",
    )
    reproduce.add_argument(
        "--transient-crop",
        type=int,
        default=48,
        help="side (pixels) of the central square of each image the transient runs on; "
        "48: the whole image; 8 leaves a 1x1 last map (minutes instead of hours with super "
        "diodes)",
    )
    reproduce.add_argument(
        "--power-images",
        type=int,
        default=4,
        help="PrivateTest images on which every preset's neurons are put at their DC "
        "operating point for the power by component (0: none)",
    )
    reproduce.add_argument(
        "--target-latency-ns",
        type=float,
        help="a latency the transient's preset must reach: refused (exit 2) below the floor "
        "its op-amps allow, else reported as met or not",
    )
    reproduce.add_argument(
        "--stepping",
        default="lanes",
        help="the transient's stepping: lanes (default: each neuron on its own Rodas4 steps "
        "on lanes that take the next neuron when theirs is done), per_neuron (each neuron on "
        "its own diffrax steps) or per_stage (every neuron of a stage on shared Rodas4 steps)",
    )
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument(
        "--rtol",
        type=float,
        help="the transient's relative step tolerance; default 3e-5 with lanes (1e-3 per "
        "neuron or per stage), 1e-5 "
        "with super diodes",
    )
    reproduce.add_argument(
        "--atol",
        type=float,
        help="the transient's absolute step tolerance, V; default 3e-6 with lanes (1e-4 "
        "per neuron or per stage), 1e-6 "
        "with super diodes",
    )
    reproduce.add_argument(
        "--compile-cache",
        default="~/.cache/memjax/jax",
        help="JAX persistent compilation cache ('' for none): later runs skip the compiles",
    )
    reproduce.set_defaults(run=_reproduce)
    train = commands.add_parser("train", help="train the digital ShuffleNetV2 on FER2013")
    train.add_argument("--data", help=data_help)
    train.add_argument(
        "--run-dir",
        default="runs/shufflenetv2-1.0x",
        help="folder of the run's checkpoints and metrics",
    )
    train.add_argument("--width", type=float, help="0.5, 1.0 (default), 1.5 or 2.0")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument(
        "--init-from",
        help="start from this model checkpoint's weights (fine-tuning; its configuration wins)",
    )
    train.add_argument(
        "--circuit",
        help="circuit-aware training: the nonlinearities are this hardware preset's (e.g. "
        "paper_plain_diode_relu) "
        "steady-state ReLU, clamp and max-pool curves (memjax.hardware.twin)",
    )
    train.add_argument(
        "--circuit-phase-epochs",
        type=int,
        default=0,
        help="with --circuit: epoch e of the first N has e/(N+1) of the diodes' forward drop",
    )
    train.add_argument(
        "--recentre",
        action="store_true",
        help="with --circuit and --init-from: move the start model's biases onto the circuit's "
        "diode knees and re-estimate its BN statistics through the circuit first",
    )
    train.add_argument(
        "--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine decay"
    )
    train.add_argument(
        "--erase-probability",
        type=float,
        default=0.5,
        help="probability of random erasing in the augmentation (0 disables)",
    )
    train.add_argument(
        "--zero-init-branch",
        action="store_true",
        help="start each basic unit's branch at zero (faster start of the deep network)",
    )
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    train.add_argument(
        "--weight-decay",
        type=float,
        default=0.05,
        help="decoupled (AdamW) or L2 (SGD) weight decay on kernels",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--keep", type=int, default=3, help="per-epoch checkpoints kept")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir exactly (its saved configuration wins)",
    )
    train.add_argument("--stop-after", type=int, help="stop after this many epochs (resumable)")
    train.add_argument("--export", help="copy the best model checkpoint here at the end")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    finetune = commands.add_parser(
        "finetune", help="hardware-in-the-loop fine-tuning of a non-ideal chip"
    )
    finetune.add_argument("--data", help=data_help)
    finetune.add_argument(
        "--checkpoint",
        help="model checkpoint; default: the shipped one (for paper_plain_diode_relu, the "
        "shipped model trained through its circuit)",
    )
    finetune.add_argument("--preset", default="near_ideal", help="hardware preset")
    finetune.add_argument(
        "--variation", type=float, default=0.1, help="device-to-device sigma (0.1 = 10 %%)"
    )
    finetune.add_argument(
        "--stuck-at", type=float, default=0.0, help="fraction of stuck devices (ON and OFF)"
    )
    finetune.add_argument(
        "--stuck-on-share",
        type=float,
        default=0.5,
        help="share of the stuck devices stuck ON (the rest OFF)",
    )
    finetune.add_argument(
        "--read-noise", type=float, default=0.0, help="relative read noise per inference"
    )
    finetune.add_argument("--levels", type=int, default=0, help="conductance levels (0: any)")
    finetune.add_argument(
        "--wire-resistance",
        type=float,
        default=0.0,
        help="bit-line resistance between neighbouring cells, ohm",
    )
    finetune.add_argument(
        "--opamp-offset", type=float, default=0.0, help="sigma of op-amp input offsets, mV"
    )
    finetune.add_argument(
        "--opamp-gain-spread",
        type=float,
        default=0.0,
        help="lognormal sigma of op-amp open-loop gains (0.3 = 30 %%)",
    )
    finetune.add_argument(
        "--no-write-verify", action="store_true", help="write targets exactly (no programming)"
    )
    finetune.add_argument("--chip-seed", type=int, default=0, help="PRNG seed of the chip")
    finetune.add_argument(
        "--mode",
        choices=("chip", "noise"),
        default="chip",
        help="chip: hardware in the loop on this chip; noise: hardware-aware training on a "
        "fresh chip of the same variation every step, then programmed onto this chip",
    )
    finetune.add_argument(
        "--forward",
        choices=("steady", "transient"),
        default="steady",
        help="steady: the chip's steady state; transient: the logits read --read-time after "
        "the input step from the whole-network transient (minutes per image on a CPU)",
    )
    finetune.add_argument(
        "--read-time", type=float, default=300.0, help="transient read-out time, ns"
    )
    finetune.add_argument(
        "--transient-eval-images",
        type=int,
        default=8,
        help="with --forward transient: images (the first of the --eval-images sample) whose "
        "logits at --read-time are scored before and after (minutes each on a CPU)",
    )
    finetune.add_argument(
        "--steps", type=int, default=100, help="fine-tuning steps (0: evaluate the chip only)"
    )
    finetune.add_argument("--batch-size", type=int, default=64)
    finetune.add_argument(
        "--lr", type=float, default=2e-4, help="Adam step, fraction of the conductance range"
    )
    finetune.add_argument("--seed", type=int, default=0, help="batch order and programming noise")
    finetune.add_argument("--checkpoint-every", type=int, default=25)
    finetune.add_argument(
        "--eval-images", type=int, default=512, help="PrivateTest sample (0: all 3,589)"
    )
    finetune.add_argument(
        "--select-every",
        type=int,
        default=0,
        help="evaluate the chip on --select-split every N steps and deploy the best step "
        "(0: deploy the last step)",
    )
    finetune.add_argument(
        "--select-split",
        default="public_test",
        choices=("train", "public_test"),
        help="the split the deployed step is chosen on (never the reported one)",
    )
    finetune.add_argument(
        "--select-images", type=int, default=0, help="images of --select-split (0: all)"
    )
    finetune.add_argument("--run-dir", default="runs/finetune", help="checkpoints and metrics")
    finetune.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    finetune.add_argument("--stop-after", type=int, help="stop after this many steps")
    finetune.add_argument("--json", help="write the result here")
    finetune.add_argument("--no-progress", action="store_true", help="no progress bar")
    finetune.set_defaults(run=_finetune)

    evaluate = commands.add_parser("evaluate", help="accuracy of a model checkpoint on FER2013")
    evaluate.add_argument("--checkpoint", help="model checkpoint folder; default: the shipped one")
    evaluate.add_argument("--data", help=data_help)
    evaluate.add_argument(
        "--split", default="private_test", choices=("train", "public_test", "private_test")
    )
    evaluate.add_argument("--width", type=float, help="fail unless the checkpoint has this width")
    evaluate.add_argument(
        "--tta",
        default="none",
        choices=("none", "flip"),
        help="test-time augmentation: flip averages the logits of each image and its mirror "
        "image (two inferences per image)",
    )
    evaluate.add_argument("--json", help="write the report here (and a confusion-matrix PNG)")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from memjax.provenance import record_command

    record_command(sys.argv[1:] if argv is None else list(argv))
    try:
        args.run(args)
    except MemjaxError as error:
        print(f"memjax: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memjax: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (head, less)
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
