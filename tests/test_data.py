"""FER2013 loaders: the three forms, their errors, files holding only some of the splits,
and the real data's known counts."""

import numpy as np
import pytest
from PIL import Image

from memjax.data import CLASS_NAMES, FER2013, Split, load_fer2013, save_npz
from memjax.errors import MemjaxError

USAGES = ["Training"] * 5 + ["PublicTest"] * 3 + ["PrivateTest"] * 2


def write_csv(path, rows):
    lines = ["emotion,pixels,Usage"] + [f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def valid_rows(rng):
    rows = []
    for i, usage in enumerate(USAGES):
        pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
        rows.append((i % 7, pixels, usage))
    return rows


def test_csv_splits_labels_and_pixels(tmp_path):
    rng = np.random.default_rng(1)
    rows = valid_rows(rng)
    data = load_fer2013(write_csv(tmp_path / "fer2013.csv", rows))
    assert (len(data.train), len(data.public_test), len(data.private_test)) == (5, 3, 2)
    assert data.train.labels.tolist() == [0, 1, 2, 3, 4]
    first = np.array(rows[0][1].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(data.train.images[0], first)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: (r[0], " ".join(r[1].split()[:-1]), r[2]), "line 4: 2303 pixels, expected 2304"),
        (lambda r: (r[0], r[1].replace(r[1].split()[7], "x7", 1), r[2]), "line 4: pixel 'x7'"),
        (lambda r: (9, r[1], r[2]), "line 4: emotion 9 outside 0..6"),
        (lambda r: (r[0], r[1], "Validation"), "line 4: unknown Usage 'Validation'"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, mutate, message):
    rows = valid_rows(np.random.default_rng(2))
    rows[2] = mutate(rows[2])
    with pytest.raises(MemjaxError, match=message):
        load_fer2013(write_csv(tmp_path / "fer2013.csv", rows))


def test_csv_with_some_splits_reads_them_and_names_the_absent(tmp_path):
    """A CSV of the test rows alone loads; asking it for Training names the split asked for,
    the file and the splits it holds; `info` lists only what is there."""
    rows = valid_rows(np.random.default_rng(3))
    path = write_csv(tmp_path / "test_only.csv", [r for r in rows if r[2] != "Training"])
    data = load_fer2013(path)
    assert data.present == ("public_test", "private_test") and data.absent == ("train",)
    assert data.train is None
    assert data.private_test.labels.tolist() == [1, 2]  # rows 8, 9 of USAGES (label = i % 7)
    first = np.array(rows[5][1].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(data.split("public_test").images[0], first)
    with pytest.raises(MemjaxError) as error:
        data.split("train")
    assert str(error.value) == (
        f"{path}: split 'train' is not in this file (it holds public_test, private_test)"
    )
    with pytest.raises(MemjaxError, match="unknown split 'validation': expected one of train"):
        data.split("validation")
    info = data.info()
    assert list(info["splits"]) == ["public_test", "private_test"]
    assert info["splits"]["private_test"] == {"total": 2, "per_class": [0, 1, 1, 0, 0, 0, 0]}
    assert info["absent"] == ["train"]
    only_train = load_fer2013(write_csv(tmp_path / "train.csv", rows[:5]))
    assert only_train.present == ("train",) and len(only_train.train) == 5
    with pytest.raises(
        MemjaxError, match=r"split 'private_test' is not in this file \(it holds train\)"
    ):
        only_train.split("private_test")
    with pytest.raises(MemjaxError, match="empty.csv: no image rows after the header"):
        load_fer2013(write_csv(tmp_path / "empty.csv", []))


def test_record_rejects_empty_splits_and_no_splits():
    """Absent is None, never an empty Split; a record holds at least one split."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    some = Split(images, np.zeros(4, np.uint8))
    empty = Split(images[:0], np.zeros(0, np.uint8))
    assert FER2013(None, None, some, "x").present == ("private_test",)
    with pytest.raises(MemjaxError, match="FER2013 public_test: an empty Split; pass None"):
        FER2013(some, empty, some, "x")
    with pytest.raises(MemjaxError, match="FER2013 train: expected a Split or None, got tuple"):
        FER2013((images, images), None, some, "x")
    with pytest.raises(MemjaxError, match="nothing.npz: no images in it"):
        FER2013(None, None, None, "nothing.npz")


def write_folder(root, rng, size=(48, 48)):
    """train/<class>/Training_i.jpg and test/<class>/{PublicTest,PrivateTest}_i.png."""
    images = {}
    for i, name in enumerate(["angry", "happy", "neutral"]):
        for folder, prefix, suffix in [
            ("train", "Training", "jpg"),
            ("train", "Training", "png"),
            ("test", "PublicTest", "png"),
            ("test", "PrivateTest", "png"),
        ]:
            path = root / folder / name / f"{prefix}_{i}{suffix[0]}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size[::-1], dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(path)
            images[path] = pixels
    return images


def test_image_folder_keeps_official_split(tmp_path):
    images = write_folder(tmp_path, np.random.default_rng(4))
    data = load_fer2013(tmp_path)
    assert (len(data.train), len(data.public_test), len(data.private_test)) == (6, 3, 3)
    assert sorted(data.public_test.labels.tolist()) == [
        CLASS_NAMES.index(c) for c in ("angry", "happy", "neutral")
    ]
    png = tmp_path / "test" / "happy" / "PrivateTest_1p.png"  # PNG is lossless: exact pixels
    np.testing.assert_array_equal(data.private_test.images[1], images[png])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda root: (root / "train" / "angry" / "Training_0j.jpg").write_bytes(b"not a jpeg"),
            r"Training_0j\.jpg: unreadable image",
        ),
        (
            lambda root: Image.new("L", (64, 48)).save(
                root / "train" / "happy" / "Training_1p.png"
            ),
            r"Training_1p\.png: image is 64x48, expected 48x48",
        ),
        (lambda root: (root / "train" / "contempt").mkdir(), "unknown class folder 'contempt'"),
        (
            lambda root: [__import__("shutil").rmtree(root / name) for name in ("train", "test")],
            "no split folder train/ or test/ in it",
        ),
        (
            lambda root: Image.new("L", (48, 48)).save(root / "test" / "angry" / "img_7.png"),
            r"img_7\.png: test image without a PublicTest_ or PrivateTest_ prefix",
        ),
    ],
)
def test_image_folder_errors_name_the_file(tmp_path, damage, message):
    write_folder(tmp_path, np.random.default_rng(5))
    damage(tmp_path)
    with pytest.raises(MemjaxError, match=message):
        load_fer2013(tmp_path)


@pytest.mark.parametrize(
    ("removed", "present"),
    [("test", ("train",)), ("train", ("public_test", "private_test"))],
)
def test_image_folder_with_one_split_folder(tmp_path, removed, present):
    """train/ alone or test/ alone is read; the other folder's splits are absent."""
    import shutil

    images = write_folder(tmp_path, np.random.default_rng(8))
    shutil.rmtree(tmp_path / removed)
    data = load_fer2013(tmp_path)
    assert data.present == present
    kept = [path for path in images if path.relative_to(tmp_path).parts[0] != removed]
    assert sum(len(data.split(name)) for name in present) == len(kept)
    if removed == "train":
        png = tmp_path / "test" / "neutral" / "PublicTest_2p.png"
        np.testing.assert_array_equal(data.public_test.images[2], images[png])
    absent = next(name for name in ("train", "public_test") if name not in present)
    with pytest.raises(MemjaxError, match=f"split '{absent}' is not in this file"):
        data.split(absent)
    (tmp_path / "test" / "happy").mkdir(parents=True, exist_ok=True)
    Image.new("L", (48, 48)).save(tmp_path / "test" / "happy" / "img_7.png")
    with pytest.raises(MemjaxError, match="img_7.png: test image without a PublicTest_"):
        load_fer2013(tmp_path)  # the prefix rule holds with test/ alone as well


def test_partial_npz_round_trip(tmp_path):
    """save_npz writes the present splits' arrays only, and the file reads back the same."""
    rows = valid_rows(np.random.default_rng(9))
    data = load_fer2013(write_csv(tmp_path / "f.csv", [r for r in rows if r[2] != "PublicTest"]))
    path = save_npz(data, tmp_path / "f.npz")
    assert sorted(np.load(path).files) == ["x_private_test", "x_train", "y_private_test", "y_train"]
    again = load_fer2013(path)
    assert again.present == ("train", "private_test") and again.public_test is None
    for name in again.present:
        np.testing.assert_array_equal(again.split(name).images, data.split(name).images)
        np.testing.assert_array_equal(again.split(name).labels, data.split(name).labels)
    assert again.info()["absent"] == ["public_test"]
    arrays = dict(np.load(path))
    del arrays["y_private_test"]  # half a pair: an error naming the missing array
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.raises(MemjaxError, match="half.npz: missing array 'y_private_test'"):
        load_fer2013(tmp_path / "half.npz")
    np.savez(tmp_path / "none.npz", x_validation=arrays["x_train"])
    with pytest.raises(MemjaxError, match="none.npz: no split in it"):
        load_fer2013(tmp_path / "none.npz")
    arrays = {"x_train": arrays["x_train"][:0], "y_train": arrays["y_train"][:0]}
    np.savez(tmp_path / "empty.npz", **arrays)
    with pytest.raises(MemjaxError, match="x_train holds no images"):
        load_fer2013(tmp_path / "empty.npz")


def test_convert_round_trip_and_npz_errors(tmp_path):
    data = load_fer2013(write_csv(tmp_path / "f.csv", valid_rows(np.random.default_rng(6))))
    path = save_npz(data, tmp_path / "f.npz")
    again = load_fer2013(path)
    for name in ("train", "public_test", "private_test"):
        np.testing.assert_array_equal(again.split(name).images, data.split(name).images)
        np.testing.assert_array_equal(again.split(name).labels, data.split(name).labels)
    arrays = dict(np.load(path))
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][3] = 7
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MemjaxError, match=r"y_train\[3\] = 7 is outside 0..6"):
        load_fer2013(tmp_path / "bad.npz")
    arrays["y_train"][3] = 0
    del arrays["x_public_test"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(MemjaxError, match="missing array 'x_public_test'"):
        load_fer2013(tmp_path / "missing.npz")
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(MemjaxError, match="truncated.npz"):
        load_fer2013(tmp_path / "truncated.npz")


def test_missing_path_and_unknown_form(tmp_path, monkeypatch):
    with pytest.raises(MemjaxError, match="does not exist"):
        load_fer2013(tmp_path / "nowhere.npz")
    (tmp_path / "fer.txt").write_text("x")
    with pytest.raises(MemjaxError, match="unknown FER2013 form"):
        load_fer2013(tmp_path / "fer.txt")
    monkeypatch.delenv("MEMJAX_FER2013", raising=False)
    with pytest.raises(MemjaxError, match="no FER2013 data given"):
        load_fer2013(None)


def test_real_fer2013_counts(fer2013):
    """The published counts (data README; Goodfellow et al. 2013)."""
    info = fer2013.info()["splits"]
    assert info["train"] == {"total": 28709, "per_class": [3995, 436, 4097, 7215, 4830, 3171, 4965]}
    assert info["public_test"] == {"total": 3589, "per_class": [467, 56, 496, 895, 653, 415, 607]}
    assert info["private_test"] == {"total": 3589, "per_class": [491, 55, 528, 879, 594, 416, 626]}
    assert fer2013.info()["absent"] == []
    assert fer2013.train.images.shape == (28709, 48, 48)
    assert fer2013.train.images.dtype == np.uint8


def test_training_and_finetuning_ask_for_their_splits_first(tmp_path):
    """Training (Training and PublicTest) and fine-tuning (Training, with steps) on a file of
    the test splits alone stop at once with the split-missing error: nothing written, no model
    loaded (the checkpoint named here does not exist)."""
    from memjax.hardware.chip import ChipVariation
    from memjax.training.finetune import FinetuneConfig, run_finetune
    from memjax.training.loop import train

    rng = np.random.default_rng(10)
    some = Split(rng.integers(0, 256, (4, 48, 48), dtype=np.uint8), np.zeros(4, np.uint8))
    test_only = FER2013(None, some, some, "test_only.csv")
    missing = (
        r"test_only.csv: split 'train' is not in this file \(it holds public_test, private_test\)"
    )
    with pytest.raises(MemjaxError, match=missing):
        train(test_only, tmp_path / "run", progress=False)
    with pytest.raises(MemjaxError, match="train.csv: split 'public_test' is not in this file"):
        train(FER2013(some, None, some, "train.csv"), tmp_path / "run", progress=False)
    with pytest.raises(MemjaxError, match=missing):
        run_finetune(
            tmp_path / "no-model",
            test_only,
            tmp_path / "finetune",
            "near_ideal",
            ChipVariation(),
            FinetuneConfig(steps=1),
            progress=False,
        )
    assert not any(tmp_path.iterdir())
