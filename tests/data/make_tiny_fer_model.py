"""How tests/data/tiny_fer_model was made (2026-12-05, commit 60311f7, 2 CPU cores, ~5 min):
a 0.5x ShuffleNetV2 with one unit per stage, trained on FER2013 with a 4-epoch schedule and
stopped after epoch 2 (PublicTest 38.20 %; its `best/`). Small enough that a chip of it
fabricates, fine-tunes and evaluates in about a minute, trained enough that a chip's errors
cost it accuracy that fine-tuning can win back (tests/test_finetune_gain.py).

    python tests/data/make_tiny_fer_model.py PATH/fer2013.npz OUT_RUN_DIR
"""

import sys
from pathlib import Path

from memjax.data import load_fer2013
from memjax.network import ShuffleNetConfig
from memjax.training.loop import TrainConfig, train

if __name__ == "__main__":
    data = load_fer2013(sys.argv[1])
    config = ShuffleNetConfig(width=0.5, stage_repeats=(1, 1, 1), zero_init_branch=True)
    result = train(
        data,
        Path(sys.argv[2]),
        config,
        TrainConfig(epochs=4, batch_size=128),
        progress=False,
        stop_after=2,
    )
    print(result["best"], "-> copy OUT_RUN_DIR/best to tests/data/tiny_fer_model")
