"""FER2013 loaders: the three forms, their errors, and the real data's known counts."""

import numpy as np
import pytest
from PIL import Image

from memjax.data import CLASS_NAMES, load_fer2013, save_npz
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


def test_csv_missing_split(tmp_path):
    rows = [r for r in valid_rows(np.random.default_rng(3)) if r[2] != "PrivateTest"]
    with pytest.raises(MemjaxError, match="split 'private_test' is missing"):
        load_fer2013(write_csv(tmp_path / "fer2013.csv", rows))


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
        (lambda root: __import__("shutil").rmtree(root / "test"), "missing split folder test/"),
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
    assert fer2013.train.images.shape == (28709, 48, 48)
    assert fer2013.train.images.dtype == np.uint8
