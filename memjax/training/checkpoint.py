"""Orbax checkpoints: the whole training state each epoch, and model checkpoints for deployment.

A *model checkpoint* is a folder with ``config.json`` (the :class:`ShuffleNetConfig` and where the
model came from) and ``state/`` (orbax: ``params`` and ``batch_stats``). The shipped model, the
best-by-PublicTest model of a run, and whatever later stages convert to circuits use this form.

Both kinds are written atomically: orbax finalises a checkpoint by renaming its temporary folder,
and a model checkpoint is assembled beside its destination and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from memjax.errors import MemjaxError
from memjax.network import ShuffleNetConfig, ShuffleNetV2, build_model
from memjax.training.steps import split_model

CONFIG_FILE = "config.json"
STATE_DIR = "state"


def uncommitted(tree):
    """``tree``'s arrays as fresh, uncommitted JAX arrays. Orbax restores arrays committed to
    a device, and jit keys its cache on that: a restored training state would compile its
    step again (twice, measured) instead of reusing the program of a fresh run."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), tree)


def write_json_atomic(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def save_model(directory: Path, config: ShuffleNetConfig, params, batch_stats, info: dict) -> Path:
    """Write a model checkpoint; an existing one at ``directory`` is replaced only when complete."""
    directory = Path(directory).absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(staging / STATE_DIR, {"params": params, "batch_stats": batch_stats})
        checkpointer.wait_until_finished()
        write_json_atomic(staging / CONFIG_FILE, {"model": _config_dict(config), **info})
        if directory.exists():
            retired = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, retired)
            os.replace(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_model_config(directory: Path) -> tuple[ShuffleNetConfig, dict]:
    """The model configuration and the rest of ``config.json``, with clear errors."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MemjaxError(f"checkpoint {directory} does not exist or is not a folder")
    config_path = directory / CONFIG_FILE
    try:
        payload = json.loads(config_path.read_text())
        config = ShuffleNetConfig.from_dict(payload["model"])
    except FileNotFoundError:
        raise MemjaxError(f"checkpoint {directory}: {CONFIG_FILE} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise MemjaxError(f"checkpoint {directory}: {CONFIG_FILE} is malformed ({error})") from None
    return config, payload


def load_model(directory: Path, expected_width: float | None = None) -> tuple[ShuffleNetV2, dict]:
    """Restore a model checkpoint into a model in evaluation mode.

    Raises :class:`MemjaxError` for a missing or truncated checkpoint, or one whose width is not
    ``expected_width``.
    """
    directory = Path(directory)
    config, payload = read_model_config(directory)
    if expected_width is not None and config.width != expected_width:
        raise MemjaxError(
            f"checkpoint {directory} holds a {config.width}x ShuffleNetV2, "
            f"but width {expected_width}x was asked for"
        )
    model = build_model(config)
    _, _, params, batch_stats = split_model(model)
    target = {"params": params, "batch_stats": batch_stats}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
        restored = ocp.StandardCheckpointer().restore((directory / STATE_DIR).absolute(), abstract)
        _check_same_tree(target, restored, directory)
    except MemjaxError:
        raise
    except Exception as error:  # orbax raises many types for truncated or foreign files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise MemjaxError(
            f"checkpoint {directory} is unreadable, truncated or corrupt "
            f"({type(error).__name__}: {first_line[:200]})"
        ) from None
    model = merge_into_model(config, restored["params"], restored["batch_stats"])
    return model, payload


def merge_into_model(config: ShuffleNetConfig, params, batch_stats) -> ShuffleNetV2:
    """A model in evaluation mode holding the given pure-dict parameters and statistics."""
    from flax import nnx

    model = build_model(config)
    graph, _, _ = nnx.split(model, nnx.Param, nnx.BatchStat)
    model = nnx.merge(graph, params, batch_stats)
    model.eval()
    return model


def _check_same_tree(expected, restored, directory: Path) -> None:
    want = jax.tree_util.tree_flatten_with_path(expected)[0]
    got = dict(jax.tree_util.tree_flatten_with_path(restored)[0])
    for path, leaf in want:
        if path not in got or np.shape(got[path]) != np.shape(leaf):
            name = jax.tree_util.keystr(path)
            raise MemjaxError(f"checkpoint {directory}: array {name} is missing or misshapen")


def _config_dict(config: ShuffleNetConfig) -> dict:
    return json.loads(config.to_json())
