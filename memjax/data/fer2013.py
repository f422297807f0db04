"""FER2013 in the three forms people have: the Kaggle CSV, the image folders, and a compact .npz.

Every loader returns the same :class:`FER2013` record, with the official split kept: train on
``train`` (Usage ``Training``), select on ``public_test`` (``PublicTest``), report on
``private_test`` (``PrivateTest``).

Reference: I. J. Goodfellow et al., "Challenges in Representation Learning: A report on three
machine learning contests", ICONIP 2013 (arXiv:1307.0414).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from memjax.errors import MemjaxError

IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Label order of the original ``fer2013.csv`` ``emotion`` column (0..6)."""
SPLITS = ("train", "public_test", "private_test")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}
DATA_ENV_VAR = "MEMJAX_FER2013"
"""Environment variable naming the FER2013 file or folder when ``--data`` is not given."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, 48, 48) gray levels 0..255, ``labels`` uint8 (N,) in 0..6."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(CLASS_NAMES)).tolist()


@dataclasses.dataclass(frozen=True)
class FER2013:
    """The data set: one :class:`Split` per name in :data:`SPLITS`, and where it was read from."""

    train: Split
    public_test: Split
    private_test: Split
    source: str

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise MemjaxError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def info(self) -> dict:
        """Counts per split and class, as printed by ``memjax data info``."""
        return {
            "source": self.source,
            "classes": list(CLASS_NAMES),
            "splits": {
                name: {"total": len(self.split(name)), "per_class": self.split(name).class_counts()}
                for name in SPLITS
            },
        }


def resolve_data_path(path: str | os.PathLike | None) -> Path:
    """The path given, else the one in ``$MEMJAX_FER2013``; a clear error when neither exists."""
    if path is None:
        path = os.environ.get(DATA_ENV_VAR)
        if not path:
            raise MemjaxError(
                "no FER2013 data given: pass --data PATH or set "
                f"{DATA_ENV_VAR} (fer2013.csv, an image folder with train/ and test/, or a .npz); "
                "see the README for where to get it"
            )
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise MemjaxError(f"FER2013 data not found: {resolved} does not exist")
    return resolved


def load_fer2013(path: str | os.PathLike | None = None) -> FER2013:
    """Load FER2013 from a ``.csv``, a ``.npz`` or an image folder (chosen by what ``path`` is)."""
    resolved = resolve_data_path(path)
    if resolved.is_dir():
        return load_image_folder(resolved)
    suffix = resolved.suffix.lower()
    if suffix == ".csv":
        return load_csv(resolved)
    if suffix == ".npz":
        return load_npz(resolved)
    raise MemjaxError(
        f"{resolved}: unknown FER2013 form; expected fer2013.csv, a .npz or a folder "
        "holding train/ and test/"
    )


def save_npz(data: FER2013, path: str | os.PathLike) -> Path:
    """Write the compact form (the arrays of ``shared/data/fer2013/README.md``) atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise MemjaxError(f"{path}: the converted file must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in SPLITS:
        split = data.split(name)
        arrays[f"x_{name}"] = split.images
        arrays[f"y_{name}"] = split.labels
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


# --- the original Kaggle CSV ------------------------------------------------------------------


def load_csv(path: Path) -> FER2013:
    """Read ``fer2013.csv`` (columns ``emotion,pixels,Usage``); errors name the line at fault."""
    images: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    labels: dict[str, list[int]] = {name: [] for name in SPLITS}
    try:
        handle = open(path, newline="")
    except OSError as error:
        raise MemjaxError(f"{path}: cannot read: {error.strerror}") from error
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        expected = ["emotion", "pixels", "Usage"]
        if header is None or [h.strip() for h in header] != expected:
            raise MemjaxError(f"{path}, line 1: header {header} is not {','.join(expected)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}, line {line}"
            if len(row) != 3:
                raise MemjaxError(f"{where}: {len(row)} fields, expected 3 (emotion,pixels,Usage)")
            emotion, pixels, usage = row
            label = _parse_label(emotion, where)
            split = USAGE_TO_SPLIT.get(usage.strip())
            if split is None:
                raise MemjaxError(
                    f"{where}: unknown Usage {usage!r}; expected one of {', '.join(USAGE_TO_SPLIT)}"
                )
            images[split].append(_parse_pixels(pixels, where))
            labels[split].append(label)
    return _assemble(images, labels, str(path))


def _parse_label(text: str, where: str) -> int:
    try:
        label = int(text)
    except ValueError:
        raise MemjaxError(f"{where}: emotion {text!r} is not an integer 0..6") from None
    if not 0 <= label < len(CLASS_NAMES):
        raise MemjaxError(f"{where}: emotion {label} outside 0..6")
    return label


def _parse_pixels(text: str, where: str) -> np.ndarray:
    tokens = text.split()
    if len(tokens) != NUM_PIXELS:
        raise MemjaxError(f"{where}: {len(tokens)} pixels, expected {NUM_PIXELS} (48x48)")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise MemjaxError(f"{where}: pixel {bad!r} is not an integer 0..255") from None
    if values.min() < 0 or values.max() > 255:
        raise MemjaxError(f"{where}: pixel values must lie in 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _assemble(images: dict, labels: dict, source: str) -> FER2013:
    splits = {}
    for name in SPLITS:
        if not labels[name]:
            raise MemjaxError(f"{source}: split {name!r} is missing (no images in it)")
        splits[name] = Split(np.stack(images[name]), np.asarray(labels[name], dtype=np.uint8))
    return FER2013(**splits, source=source)


# --- the image-folder version -----------------------------------------------------------------


def load_image_folder(root: Path) -> FER2013:
    """Read ``train/<class>/*`` and ``test/<class>/*`` (48x48 grayscale JPEG or PNG).

    In ``test/`` the file-name prefixes ``PublicTest_`` and ``PrivateTest_`` give the official
    split. A ``test/`` folder without them has no official split to keep, which is an error: the
    protocol (select on PublicTest, report on PrivateTest) cannot be followed.
    """
    from PIL import Image, UnidentifiedImageError

    images: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    labels: dict[str, list[int]] = {name: [] for name in SPLITS}
    for folder in ("train", "test"):
        top = root / folder
        if not top.is_dir():
            raise MemjaxError(f"{root}: missing split folder {folder}/ (expected train/ and test/)")
        for class_dir in sorted(p for p in top.iterdir() if p.is_dir()):
            name = class_dir.name.lower()
            if name not in CLASS_NAMES:
                raise MemjaxError(
                    f"{class_dir}: unknown class folder {class_dir.name!r}; "
                    f"expected one of {', '.join(CLASS_NAMES)}"
                )
            label = CLASS_NAMES.index(name)
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                split = "train" if folder == "train" else _test_split_of(file)
                try:
                    with Image.open(file) as image:
                        image.load()
                        pixels = np.asarray(image.convert("L"))
                except (UnidentifiedImageError, OSError) as error:
                    raise MemjaxError(f"{file}: unreadable image ({error})") from error
                if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
                    raise MemjaxError(
                        f"{file}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected 48x48"
                    )
                images[split].append(pixels)
                labels[split].append(label)
    return _assemble(images, labels, str(root))


def _test_split_of(file: Path) -> str:
    if file.name.startswith("PublicTest_"):
        return "public_test"
    if file.name.startswith("PrivateTest_"):
        return "private_test"
    raise MemjaxError(
        f"{file}: test image without a PublicTest_ or PrivateTest_ prefix; the official split "
        "cannot be recovered (use the Kaggle image-folder version or fer2013.csv)"
    )


# --- the compact .npz -------------------------------------------------------------------------


def load_npz(path: Path) -> FER2013:
    """Read the compact form: ``x_<split>`` uint8 (N, 48, 48) and ``y_<split>`` in 0..6."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise MemjaxError(f"{path}: not a readable .npz file ({error})") from error
    with archive:
        splits = {}
        for name in SPLITS:
            for key in (f"x_{name}", f"y_{name}"):
                if key not in archive.files:
                    raise MemjaxError(f"{path}: missing array {key!r} (split {name!r})")
            try:
                x, y = archive[f"x_{name}"], archive[f"y_{name}"]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise MemjaxError(
                    f"{path}: array of split {name!r} is corrupt ({error})"
                ) from error
            if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
                raise MemjaxError(f"{path}: x_{name} has shape {x.shape}, expected (N, 48, 48)")
            if x.dtype != np.uint8:
                raise MemjaxError(f"{path}: x_{name} has dtype {x.dtype}, expected uint8")
            if y.shape != (x.shape[0],):
                raise MemjaxError(f"{path}: y_{name} has shape {y.shape}, expected ({x.shape[0]},)")
            if y.size and (y.min() < 0 or y.max() >= len(CLASS_NAMES)):
                bad = int(np.flatnonzero((y < 0) | (y >= len(CLASS_NAMES)))[0])
                raise MemjaxError(f"{path}: y_{name}[{bad}] = {y[bad]} is outside 0..6")
            if not x.shape[0]:
                raise MemjaxError(f"{path}: split {name!r} is missing (no images in it)")
            splits[name] = Split(x, y.astype(np.uint8))
    return FER2013(**splits, source=str(path))
