"""Monte Carlo over chips, sharded across devices: run on 4 CPU devices in a subprocess
(``XLA_FLAGS`` must be set before JAX starts) and compared with chips evaluated one by one."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, jax, numpy as np
from memjax.hardware.chip import ChipVariation, fabricate
from memjax.hardware.config import near_ideal
from memjax.hardware.memristive import convert
from memjax.hardware.montecarlo import chip_accuracies
from memjax.network import ShuffleNetConfig, build_model
from memjax.training.finetune import chip_accuracy

design = convert(build_model(ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1))), near_ideal())
variation = ChipVariation(variation=0.3, stuck_on_rate=0.02, programming=None)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
labels = rng.integers(0, 7, 40)
keys = jax.random.split(jax.random.key(0), 6)
result = chip_accuracies(design, variation, keys, images, labels, batch_size=16)
alone = [chip_accuracy(fabricate(design, variation, k)[0], images, labels) for k in keys]
print(json.dumps({
    "devices": result["devices"],
    "shards": len(result["sharding"].device_set),
    "sharded": result["accuracy"].tolist(),
    "alone": alone,
}))
"""


def test_chips_sharded_over_four_devices_match_chips_one_by_one():
    """6 chips (padded to 8) over 4 host devices: every device holds a share, and each chip's
    accuracy equals that of the same chip fabricated and evaluated alone (the same images,
    at most one prediction flipped by float reassociation: 1/40)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4 and result["shards"] == 4
    assert len(result["sharded"]) == 6
    for sharded, alone in zip(result["sharded"], result["alone"], strict=True):
        assert abs(sharded - alone) <= 1 / 40 + 1e-9
    assert len(set(result["sharded"])) > 1  # the chips differ
