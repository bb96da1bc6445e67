import struct

import numpy as np
import pytest
import torch
from PIL import Image

from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.data.names import OFFLINE, DatasetError, parse_augment


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_datasets_load_as_tensors(name):
    d = load_dataset(name)
    assert d.y_train.dtype == torch.long and d.y_test.dtype == torch.long
    assert len(d.x_train) == len(d.y_train) and len(d.x_test) == len(d.y_test)
    assert set(d.y_train.tolist()) == set(range(d.num_classes)) == set(d.y_test.tolist())
    if name == "digits":
        assert d.x_train.dtype == torch.uint8 and d.input_shape == (1, 8, 8)
        assert len(d.x_train) + len(d.x_test) == 1797
        # stratified: each class puts a quarter of its images (to within one) into the test split
        test, total = torch.bincount(d.y_test), torch.bincount(torch.cat([d.y_train, d.y_test]))
        assert ((test - total * 0.25).abs() <= 1).all()
    else:
        assert d.x_train.dtype == torch.float32 and d.input_shape == (2,)
    # the same call gives the same data (seeded generators, fixed split)
    again = load_dataset(name)
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)
    assert len(d.mean) == len(d.std) == (1 if name == "digits" else 2)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match=r"digits.*imagefolder:PATH"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "fashion_mnist"])
def test_torchvision_dataset_without_network_says_where_to_put_files(name, tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / name) in msg and "Put " in msg and "imagefolder:PATH" in msg


def _write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_files_in_the_data_folder_load_through_torchvision(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    d = load_dataset("mnist", root=tmp_path)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_train.dtype == torch.uint8
    assert d.y_test.tolist() == list(range(10)) and d.num_classes == 10


def _make_image_folder(root, size=(12, 10), per_class=3, classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root


def test_image_folder_decodes_once_and_caches(tmp_path):
    folder = _make_image_folder(tmp_path / "pets")
    d = load_dataset(f"imagefolder:{folder}", root=tmp_path / "cache")
    assert d.classes == ["cat", "dog"] and d.x_train.shape == (6, 3, 10, 12)
    first = np.array(Image.open(folder / "train" / "dog" / "1.png")).transpose(2, 0, 1)
    assert torch.equal(d.x_train[4], torch.from_numpy(first)) and d.y_train[4] == 1
    caches = list((tmp_path / "cache" / "imagefolder").glob("*.npz"))
    assert len(caches) == 1
    mtime = caches[0].stat().st_mtime_ns
    again = load_dataset(f"imagefolder:{folder}", root=tmp_path / "cache")
    assert torch.equal(again.x_test, d.x_test) and caches[0].stat().st_mtime_ns == mtime
    # changing a file invalidates the cache
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(folder / "test" / "cat" / "0.png")
    changed = load_dataset(f"imagefolder:{folder}", root=tmp_path / "cache")
    assert changed.x_test[0].sum() == 0


def test_image_folder_errors_are_specific(tmp_path):
    with pytest.raises(DatasetError, match="train/<class>/ and test/<class>/"):
        load_dataset(f"imagefolder:{tmp_path}")
    folder = _make_image_folder(tmp_path / "mixed")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(folder / "train" / "cat" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd.png is 5x5 but earlier images are 12x10"):
        load_dataset(f"imagefolder:{folder}")


def test_digits_from_the_shipped_file_are_scikit_learns_split_and_without_it_come_from_sklearn(
    tmp_path, monkeypatch
):
    """assets/digits.safetensors (read to spare every command scikit-learn's import) holds exactly
    scikit-learn's digits as split_digits splits them; a missing or damaged file falls back to
    scikit-learn, with the same dataset."""
    from safetensors.numpy import load_file

    from pof.data import offline

    shipped = load_file(offline.DIGITS_FILE)
    for key, want in zip(offline.DIGITS_ARRAYS, offline.split_digits(), strict=True):
        assert shipped[key].dtype == want.dtype and np.array_equal(shipped[key], want), key
    fast = offline.digits()
    (tmp_path / "damaged.safetensors").write_bytes(b"\x08" + bytes(20))
    for stand_in in (tmp_path / "absent.safetensors", tmp_path / "damaged.safetensors"):
        monkeypatch.setattr(offline, "DIGITS_FILE", stand_in)
        slow = offline.digits()
        for name in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(fast, name), getattr(slow, name)), (stand_in, name)
        assert (fast.mean, fast.std) == (slow.mean, slow.std)


def _digits_batches(**kw):
    d = load_dataset("digits")
    return d, Batches(d.x_train, d.y_train, d.mean, d.std, 100, **kw)


def test_batches_cover_every_sample_once_per_epoch_and_replay_exactly():
    d, b = _digits_batches(seed=3)
    ys = torch.cat([y for _, y in b.epoch(5)])
    assert torch.equal(torch.sort(ys).values, torch.sort(d.y_train).values)
    again = [x for x, _ in b.epoch(5)]
    assert all(torch.equal(x1, x2) for (x1, _), x2 in zip(b.epoch(5), again, strict=True))
    assert not torch.equal(next(iter(b.epoch(6)))[0], again[0])


def test_normalization_uses_dataset_statistics():
    _, b = _digits_batches(shuffle=False)
    x = torch.cat([x for x, _ in b.epoch(0)])
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    d, b = _digits_batches(shuffle=False, augment={"crop": 2})
    x, _ = next(iter(b.epoch(0)))
    raw = torch.nn.functional.pad(d.x_train[:100].float() / 255, (2, 2, 2, 2))
    mean, std = d.mean[0], d.std[0]
    shifts_seen = set()
    for i in range(100):
        img = x[i, 0] * std + mean
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.allclose(raw[i, 0, dy : dy + 8, dx : dx + 8], img, atol=1e-5)
        ]
        assert matches, f"sample {i} is not a window of its padded image"
        shifts_seen.update(matches)
    assert len(shifts_seen) > 10  # the offsets really vary


def test_flip_and_cutout():
    d, b = _digits_batches(shuffle=False, augment={"flip": True})
    x, _ = next(iter(b.epoch(0)))
    plain = b.normalize(d.x_train[:100])
    flipped = [
        torch.equal(x[i], plain[i].flip(2)) and not torch.equal(x[i], plain[i]) for i in range(100)
    ]
    same = [torch.equal(x[i], plain[i]) for i in range(100)]
    assert all(f or s for f, s in zip(flipped, same, strict=True)) and 20 < sum(flipped) < 80
    ones = torch.full((50, 1, 16, 16), 255, dtype=torch.uint8)
    b = Batches(ones, torch.zeros(50, dtype=torch.long), (0.0,), (1.0,), 50, augment={"cutout": 4})
    x, _ = next(iter(b))
    zeros = (x == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # 4x4 squares, clipped at the border


def test_weak_batch_sampling_is_uniform_with_replacement():
    d, b = _digits_batches()
    x, y = b.sample(5000, torch.Generator().manual_seed(0))
    assert x.shape == (5000, 1, 8, 8)
    freq = torch.bincount(y, minlength=10).float() / 5000
    assert torch.allclose(freq, torch.bincount(d.y_train).float() / len(d.y_train), atol=0.03)


def test_parse_augment():
    assert parse_augment("default", {"crop": 4}) == {"crop": 4}
    assert parse_augment("none", {"crop": 4}) == {}
    assert parse_augment("crop=2,flip,cutout=8", {}) == {"crop": 2, "flip": True, "cutout": 8}
    with pytest.raises(ValueError, match="crop=PAD"):
        parse_augment("rotate=5", {})
