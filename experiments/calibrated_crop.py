"""``paper_calibrated_driven()`` on the central pixels of the main job's transient image, with
the rectifiers' low rail and the node capacitance as options: how the crop's settling moves
with U1's rail (``HardwareConfig.relu_low_rail``) and with capacitance on every bit line and
summing node (``HardwareConfig.bitline_capacitance``).

    python experiments/calibrated_crop.py --rail ground --crop 8 --capacitance 1e-15
        [--data FER2013] [--checkpoint DIR] [--t-end 5e-7] [--out results/calibrated_crop]

Appends one record (the options and :func:`calibrated_faces.measure_face`'s summary of the
crop: the logits', argmax's and every layer's settling, the largest memristor |V|, the busiest
neuron, the energy, the mean solver steps, the logit waveform) to ``crops.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memjax.hardware.config import PRESETS
from memjax.hardware.layers import network_layers
from memjax.hardware.memristive import convert, with_pool_inputs
from memjax.hardware.transient import TransientOptions
from memjax.provenance import provenance
from memjax.reproduce import find_data, main_job_images
from memjax.training.checkpoint import load_model, write_json_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrated_faces import measure_face  # noqa: E402  (a sibling script)

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rail", choices=("shared", "ground"), default="ground")
    parser.add_argument("--crop", type=int, default=8)
    parser.add_argument("--capacitance", type=float, default=0.0, help="F per node")
    parser.add_argument("--t-end", type=float, default=5e-7)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--out", default="results/calibrated_crop")
    given = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(given)
    if not 1 <= args.crop <= 48 or args.capacitance < 0:
        print("--crop: 1 to 48 pixels; --capacitance: >= 0 F", file=sys.stderr)
        raise SystemExit(2)
    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    test = data.split("private_test")
    _, transient = main_job_images(len(test))
    model, _ = load_model(Path(args.checkpoint))
    hardware = PRESETS["paper_calibrated_driven"]().replace(
        relu_low_rail=args.rail, bitline_capacitance=args.capacitance
    )
    low = (48 - args.crop) // 2
    image = test.images[transient[:1], low : low + args.crop, low : low + args.crop]
    pooled = network_layers(model.config, args.crop)[-2].inputs_per_kernel
    net = with_pool_inputs(convert(model, hardware), pooled)
    options = TransientOptions.for_hardware(hardware, t_end=args.t_end)
    row = {
        "command": " ".join(["python", "experiments/calibrated_crop.py", *given]),
        "rail": args.rail,
        "crop": args.crop,
        "capacitance_F": args.capacitance,
        "image": int(transient[0]),
        **measure_face(net, image[0], options),
        "provenance": provenance(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "crops.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    write_json_atomic(path, [*rows, row])
    brief = {
        k: v for k, v in row.items() if k not in ("provenance", "logits_V", "per_layer_settling_ns")
    }
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
