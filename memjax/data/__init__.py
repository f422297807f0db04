"""Data sets: FER2013 in its three common forms."""

from memjax.data.fer2013 import (
    CLASS_NAMES,
    DATA_ENV_VAR,
    FER2013,
    SPLITS,
    Split,
    load_fer2013,
    resolve_data_path,
    save_npz,
)

__all__ = [
    "CLASS_NAMES",
    "DATA_ENV_VAR",
    "FER2013",
    "SPLITS",
    "Split",
    "load_fer2013",
    "resolve_data_path",
    "save_npz",
]
