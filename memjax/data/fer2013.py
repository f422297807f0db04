"""FER2013 in the three forms people have: the Kaggle CSV, the image folders, and a compact .npz.

Every loader returns the same :class:`FER2013` record, with the official split kept: train on
``train`` (Usage ``Training``), select on ``public_test`` (``PublicTest``), report on
``private_test`` (``PrivateTest``). A file may hold only some of the splits (a CSV of the test
rows is enough to evaluate a model): the loaders read what is there, and the split a command
needs is asked for when it needs it, by :meth:`FER2013.split`, whose error names the splits
the file does hold.

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
    """The data set: a :class:`Split` per name in :data:`SPLITS` that the source holds, None
    for one it does not, and where it was read from.

    An absent split is None, never an empty :class:`Split`: an empty one would score a model at
    0/0 or train it on nothing, where asking for an absent split fails at once and says so.
    """

    train: Split | None
    public_test: Split | None
    private_test: Split | None
    source: str

    def __post_init__(self):
        for name in SPLITS:
            split = getattr(self, name)
            if split is None:
                continue
            if not isinstance(split, Split):
                raise MemjaxError(
                    f"FER2013 {name}: expected a Split or None, got {type(split).__name__}"
                )
            if not len(split):
                raise MemjaxError(
                    f"FER2013 {name}: an empty Split; pass None for a split the data lacks"
                )
        if not self.present:
            raise MemjaxError(f"{self.source}: no images in it (none of {', '.join(SPLITS)})")

    @property
    def present(self) -> tuple[str, ...]:
        """The splits this data holds, in the order of :data:`SPLITS`."""
        return tuple(name for name in SPLITS if getattr(self, name) is not None)

    @property
    def absent(self) -> tuple[str, ...]:
        """The splits this data lacks, in the order of :data:`SPLITS`."""
        return tuple(name for name in SPLITS if getattr(self, name) is None)

    def split(self, name: str) -> Split:
        """The split ``name``; an error naming the source and the splits it holds if absent."""
        if name not in SPLITS:
            raise MemjaxError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        split = getattr(self, name)
        if split is None:
            raise MemjaxError(
                f"{self.source}: split {name!r} is not in this file "
                f"(it holds {', '.join(self.present)})"
            )
        return split

    def info(self) -> dict:
        """Counts per split and class of the splits present, and the absent splits' names, as
        printed by ``memjax data info``."""
        return {
            "source": self.source,
            "classes": list(CLASS_NAMES),
            "splits": {
                name: {"total": len(self.split(name)), "per_class": self.split(name).class_counts()}
                for name in self.present
            },
            "absent": list(self.absent),
        }


def resolve_data_path(path: str | os.PathLike | None) -> Path:
    """The path given, else the one in ``$MEMJAX_FER2013``; a clear error when neither exists."""
    if path is None:
        path = os.environ.get(DATA_ENV_VAR)
        if not path:
            raise MemjaxError(
                "no FER2013 data given: pass --data PATH or set "
                f"{DATA_ENV_VAR} (fer2013.csv, an image folder with train/ and/or test/, or a "
                ".npz); see the README for where to get it"
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
        "holding train/ and/or test/"
    )


def save_npz(data: FER2013, path: str | os.PathLike) -> Path:
    """Write the compact form (the arrays of ``shared/data/fer2013/README.md``) atomically: the
    ``x_<split>``, ``y_<split>`` pair of each split present, none for an absent one."""
    path = Path(path)
    if path.suffix != ".npz":
        raise MemjaxError(f"{path}: the converted file must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in data.present:
        split = data.split(name)
        arrays[f"x_{name}"] = split.images
        arrays[f"y_{name}"] = split.labels
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


# --- the original Kaggle CSV ------------------------------------------------------------------


def load_csv(path: Path) -> FER2013:
    """Read ``fer2013.csv`` (columns ``emotion,pixels,Usage``); errors name the line at fault.

    The rows may be of any of the Usage values: a split without rows is absent from the record.
    """
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
    if not any(labels.values()):
        raise MemjaxError(f"{path}: no image rows after the header")
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
    """The record of the splits that have images; absent (None) those that have none."""
    splits = {
        name: Split(np.stack(images[name]), np.asarray(labels[name], dtype=np.uint8))
        if labels[name]
        else None
        for name in SPLITS
    }
    return FER2013(**splits, source=source)


# --- the image-folder version -----------------------------------------------------------------


def load_image_folder(root: Path) -> FER2013:
    """Read ``train/<class>/*`` and ``test/<class>/*`` (48x48 grayscale JPEG or PNG).

    In ``test/`` the file-name prefixes ``PublicTest_`` and ``PrivateTest_`` give the official
    split. A ``test/`` folder without them has no official split to keep, which is an error: the
    protocol (select on PublicTest, report on PrivateTest) cannot be followed. Either folder
    may be missing (``test/`` alone is enough to evaluate); its splits are then absent.
    """
    from PIL import Image, UnidentifiedImageError

    images: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    labels: dict[str, list[int]] = {name: [] for name in SPLITS}
    folders = [folder for folder in ("train", "test") if (root / folder).is_dir()]
    if not folders:
        raise MemjaxError(
            f"{root}: no split folder train/ or test/ in it (expected either or both)"
        )
    for folder in folders:
        top = root / folder
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
    """Read the compact form: ``x_<split>`` uint8 (N, 48, 48) and ``y_<split>`` in 0..6.

    A split whose pair of arrays is not in the file is absent; half a pair is an error.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise MemjaxError(f"{path}: not a readable .npz file ({error})") from error
    with archive:
        splits = {}
        for name in SPLITS:
            keys = [key for key in (f"x_{name}", f"y_{name}") if key in archive.files]
            if not keys:
                splits[name] = None
                continue
            if len(keys) == 1:
                (missing,) = {f"x_{name}", f"y_{name}"} - set(keys)
                raise MemjaxError(
                    f"{path}: missing array {missing!r} (split {name!r}: {keys[0]!r} is there)"
                )
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
                raise MemjaxError(
                    f"{path}: x_{name} holds no images; a file without split {name!r} leaves "
                    "out its arrays"
                )
            splits[name] = Split(x, y.astype(np.uint8))
    if all(split is None for split in splits.values()):
        raise MemjaxError(
            f"{path}: no split in it (no pair of arrays x_<split>, y_<split> for any of "
            f"{', '.join(SPLITS)})"
        )
    return FER2013(**splits, source=str(path))
