"""Image data: the digits split, ImageFolder reading (corrupt files skipped with a warning,
empty or missing folders a one-line error), the transforms, the batch sampler."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from aiayn.data.digits import load_digits_split
from aiayn.data.image_folder import load_image, read_image_folder
from aiayn.data.image_transforms import Normalization, random_hflip, random_shift
from aiayn.data.shuffled_batches import ShuffledBatchSampler
from aiayn.errors import DataError


def make_folder(root, classes=("cat", "dog"), per_class=3, size=10):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] = 255  # a class you can see
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_digits_split_is_fixed_stratified_and_seeded():
    train, test = load_digits_split(0)
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.uint8
    counts = np.bincount(test.labels.numpy(), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # 450 / 10, stratified
    again, _ = load_digits_split(0)
    assert torch.equal(again.images, train.images)
    other, _ = load_digits_split(1)
    assert not torch.equal(other.images, train.images)


def test_image_folder_reads_classes_and_skips_corrupt_files_with_a_warning(tmp_path, caplog):
    root = make_folder(tmp_path / "train")
    (root / "cat" / "broken.png").write_bytes(b"not a png at all")
    (root / "dog" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        data = read_image_folder(root, size=8)
    assert data.names == ("cat", "dog") and len(data) == 6
    assert data.images.shape == (6, 3, 8, 8) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 1 unreadable image" in warning and "broken.png" in warning


def test_empty_or_missing_folders_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders") as err:
        read_image_folder(tmp_path / "empty", 8)
    assert "\n" not in str(err.value)
    (tmp_path / "classes" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="classes: no readable images"):
        read_image_folder(tmp_path / "classes", 8)
    with pytest.raises(DataError, match="nowhere: no such image folder"):
        read_image_folder(tmp_path / "nowhere", 8)
    make_folder(tmp_path / "valid", classes=("cat", "cow"))
    with pytest.raises(DataError, match="cow not among the training classes"):
        read_image_folder(tmp_path / "valid", 8, names=("cat", "dog"))
    with pytest.raises(DataError, match=r"missing\.png: no such image file"):
        load_image(tmp_path / "missing.png", 8)


def test_random_shift_moves_content_by_at_most_pad_pixels():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    images[:, 0, 4, 4] = 255
    shifted = random_shift(images, 1)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    where = shifted[:, 0].flatten(1).argmax(dim=1)  # one bright pixel per image
    rows, cols = where // 8, where % 8
    assert ((rows - 4).abs() <= 1).all() and ((cols - 4).abs() <= 1).all()
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 9  # every shift occurs
    assert torch.equal(random_shift(images, 0), images)


def test_hflip_mirrors_about_half_the_images():
    torch.manual_seed(0)
    images = torch.arange(4 * 8).reshape(1, 1, 4, 8).expand(200, 1, 4, 8)
    flipped = random_hflip(images)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(dim=1)
    assert 70 < int(mirrored.sum()) < 130
    assert ((flipped == images).flatten(1).all(dim=1) | mirrored).all()


def test_normalization_statistics_and_round_trip(tmp_path):
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    norm = Normalization.of(images)
    x = norm(images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    norm.save(tmp_path)
    assert Normalization.load(tmp_path) == norm


def test_sampler_reshuffles_each_epoch_and_resumes():
    sampler = ShuffledBatchSampler(10, 3, seed=1)
    assert len(sampler) == 3  # the last, partial batch is dropped
    first = list(sampler)
    second = list(sampler)
    assert first != second and all(len(b) == 3 for b in first + second)
    resumed = ShuffledBatchSampler(10, 3, seed=1)
    it = iter(resumed)
    next(it)
    state = resumed.state_dict()
    fresh = ShuffledBatchSampler(10, 3, seed=1)
    fresh.load_state_dict(state)
    assert list(fresh) == first[1:]
