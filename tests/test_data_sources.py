"""The user's own data (npz/safetensors arrays, CSV files), stated class order and normalization."""

import argparse
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file

from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.data.names import AS_IS, COMPUTED, STATED, DatasetError, data_options, parse_stats
from pof.data.signatures import signature
from pof.models.catalogue import incompatibility

RNG = np.random.default_rng(0)


def _arrays(n_train=12, n_test=6, features=(3,), k=3, dtype=np.float32):
    x = lambda n: (
        RNG.integers(0, 256, (n, *features), dtype=np.uint8)
        if dtype == np.uint8
        else RNG.normal(2.0, 3.0, (n, *features)).astype(dtype)
    )
    return {
        "x_train": x(n_train),
        "y_train": np.arange(n_train) % k,
        "x_test": x(n_test),
        "y_test": np.arange(n_test) % k,
    }


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


# --- npz and safetensors -------------------------------------------------------------------------


def test_npz_float_arrays_are_used_as_they_are(tmp_path):
    a = _arrays()
    d = load_dataset(_npz(tmp_path / "mine.npz", **a))
    assert d.x_train.dtype == torch.float32 and d.input_shape == (3,) and not d.is_image
    assert torch.equal(d.x_train, torch.from_numpy(a["x_train"])) and d.y_test.tolist() == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    assert d.classes == ["0", "1", "2"] and d.class_order == "numeric"
    assert d.mean == (0.0, 0.0, 0.0) and d.std == (1.0, 1.0, 1.0) and d.normalization == AS_IS
    assert d.augment == {} and d.name == f"npz:{tmp_path / 'mine.npz'}"
    # identity: a batch holds the very numbers of the file
    xb, yb = next(iter(Batches(d.x_test, d.y_test, d.mean, d.std, 6, shuffle=False)))
    assert torch.equal(xb, torch.from_numpy(a["x_test"])) and yb.tolist() == a["y_test"].tolist()


def test_safetensors_arrays_are_recognized_by_content_not_by_name(tmp_path):
    a = _arrays(features=(3, 8, 8), dtype=np.uint8)
    path = tmp_path / "images.npz"  # a misleading extension: the content is safetensors
    save_file(a, str(path))
    assert path.read_bytes()[8:9] == b"{"
    d = load_dataset(f"npz:{path}")
    assert "safetensors" in d.source
    assert d.is_image and d.x_train.dtype == torch.uint8 and d.input_shape == (3, 8, 8)
    assert torch.equal(d.x_train, torch.from_numpy(a["x_train"]))
    # uint8 images as the registry's: only /255 by default, and the image augmentation applies
    assert d.mean == (0.0,) * 3 and d.std == (1.0,) * 3 and d.augment == {"crop": 1, "flip": True}
    xb, _ = next(iter(Batches(d.x_train, d.y_train, d.mean, d.std, 12, shuffle=False)))
    assert torch.allclose(xb, torch.from_numpy(a["x_train"]).float() / 255)


def test_npz_saved_under_another_name_loads_too(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "data.npz", **a)
    (tmp_path / "data.npz").rename(tmp_path / "data.bin")
    assert load_dataset(f"npz:{tmp_path / 'data.bin'}").y_train.tolist() == a["y_train"].tolist()


def test_npz_stated_classes_name_the_integer_labels(tmp_path):
    name = _npz(tmp_path / "a.npz", **_arrays())
    d = load_dataset(name, classes=["low", "mid", "high"])
    assert d.classes == ["low", "mid", "high"] and d.class_order == "stated"
    assert d.y_train.tolist()[:3] == [0, 1, 2]  # the labels are untouched; only named
    with pytest.raises(DatasetError, match=r"names 2 classes but the labels run 0..2"):
        load_dataset(name, classes="low,high")


def test_npz_with_gaps_in_labels_is_refused_unless_all_classes_are_named(tmp_path):
    a = _arrays()
    name = _npz(
        tmp_path / "one_based.npz", **{**a, "y_train": a["y_train"] + 1, "y_test": a["y_test"] + 1}
    )
    with pytest.raises(DatasetError, match=r"no example has label 0.*subtract it"):
        load_dataset(name)
    d = load_dataset(name, classes="unused,a,b,c")
    assert d.num_classes == 4 and d.y_train.min() == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_test": None}, r"lacks x_test; it holds \['x_train', 'y_test', 'y_train'\]"),
        (
            {"y_train": np.zeros(5, np.int64)},
            r"x_train has 12 rows and y_train 5 labels.*x_train: float32 \(12, 3\)",
        ),
        ({"x_test": np.zeros((6, 4), np.float32)}, r"same feature shape.*x_test: float32 \(6, 4\)"),
        ({"y_test": np.arange(6) / 2}, r"labels must be integers 0..K-1, but y_test is float64"),
        ({"y_train": -(np.arange(12) % 3)}, r"labels must be integers 0..K-1, found -2"),
        ({"x_train": np.zeros(12, np.float32)}, r"must be \(N, features...\).*x\[:, None\]"),
        (
            {"x_train": np.zeros((12, 8, 8), np.uint8), "x_test": np.zeros((6, 8, 8), np.uint8)},
            r"x\[:, None\]",
        ),
        (
            {
                "x_train": np.zeros((12, 8, 8, 3), np.uint8),
                "x_test": np.zeros((6, 8, 8, 3), np.uint8),
            },
            r"channels-last.*transpose\(0, 3, 1, 2\)",
        ),
    ],
)
def test_bad_arrays_say_what_was_found(tmp_path, change, message):
    a = {k: v for k, v in {**_arrays(), **change}.items() if v is not None}
    with pytest.raises(DatasetError, match=message):
        load_dataset(_npz(tmp_path / "bad.npz", **a))


def test_nan_and_overflowing_values_are_refused(tmp_path):
    a = _arrays()
    a["x_train"][4, 1] = np.nan
    with pytest.raises(
        DatasetError, match=r"x_train has 1 NaN or infinite values .*index \(4, 1\)"
    ):
        load_dataset(_npz(tmp_path / "nan.npz", **a))
    a = _arrays()
    a["x_test"] = a["x_test"].astype(np.float64)
    a["x_test"][0, 0] = 1e300  # finite as float64, inf as float32
    with pytest.raises(DatasetError, match="x_test has 1 NaN or infinite"):
        load_dataset(_npz(tmp_path / "big.npz", **a))


class Boom:
    """Unpickling this would raise: proof that nothing was unpickled."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("the object array was unpickled")


def test_a_pickled_object_array_is_refused_without_unpickling(tmp_path):
    a = _arrays()
    a["x_train"] = np.array([Boom()] * 12, dtype=object)
    with pytest.raises(DatasetError, match=r"x_train holds Python objects.*never loaded"):
        load_dataset(_npz(tmp_path / "pickled.npz", **a))


def test_files_that_are_neither_format_or_missing(tmp_path):
    fake = tmp_path / "weights.safetensors"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(
        DatasetError, match=r"neither an .npz file .* nor a safetensors file.*\\x89PNG"
    ):
        load_dataset(f"npz:{fake}")
    # a header length beyond the end of the file is not safetensors either
    liar = tmp_path / "liar.npz"
    liar.write_bytes((10**9).to_bytes(8, "little") + b'{"x": 1}')
    with pytest.raises(DatasetError, match="neither"):
        load_dataset(f"npz:{liar}")
    truncated = tmp_path / "cut.npz"
    np.savez(truncated, **_arrays())
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"Cannot read .*cut.npz as npz"):
        load_dataset(f"npz:{truncated}")
    with pytest.raises(DatasetError, match=f"No such file: {tmp_path / 'absent.npz'}$"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    with pytest.raises(
        DatasetError, match="is a folder, not a file; give the path of the data file itself"
    ):
        load_dataset(f"npz:{tmp_path}")


# --- CSV ------------------------------------------------------------------------------------------

CSV = """height,weight,species,split
1.5,20,dog,train
0.3,4,cat,train
0.2,0.1,mouse,train
1.2,30,dog,test
0.25,3.5,cat,test
"""


def test_csv_with_split_column_and_string_labels(tmp_path):
    (tmp_path / "pets.csv").write_text(CSV)
    d = load_dataset(f"csv:{tmp_path / 'pets.csv'}", label_column="species")
    assert torch.allclose(
        d.x_train, torch.tensor([[1.5, 20], [0.3, 4], [0.2, 0.1]])
    ) and d.input_shape == (2,)
    assert d.x_train.dtype == torch.float32
    assert d.classes == ["cat", "dog", "mouse"] and d.class_order == "alphabetical"
    assert d.y_train.tolist() == [1, 0, 2] and d.y_test.tolist() == [1, 0]
    assert d.mean == (0.0, 0.0) and d.normalization == AS_IS
    # a stated order is followed exactly
    s = load_dataset(
        f"csv:{tmp_path / 'pets.csv'}", label_column="species", classes="mouse,dog,cat"
    )
    assert (
        s.class_order == "stated"
        and s.y_train.tolist() == [1, 2, 0]
        and s.y_test.tolist() == [1, 2]
    )


def test_csv_pair_with_integer_labels_matches_columns_by_name(tmp_path):
    (tmp_path / "train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,2\n")
    (tmp_path / "test.csv").write_text("label,b,a\n2,60,50\n0,20,10\n")  # other column order
    d = load_dataset(f"csv:{tmp_path / 'train.csv'},{tmp_path / 'test.csv'}")
    assert d.x_test.tolist() == [[50, 60], [10, 20]] and d.y_test.tolist() == [2, 0]
    assert d.classes == ["0", "1", "2"] and d.class_order == "numeric" and len(d.x_train) == 3
    assert load_dataset(
        f"csv:{tmp_path / 'train.csv'},{tmp_path / 'test.csv'}", classes=["r", "g", "b"]
    ).classes == ["r", "g", "b"]


@pytest.mark.parametrize(
    "text, kw, message",
    [
        (
            CSV,
            {},
            r"no label column 'label'; its columns are \['height', 'weight', 'species', 'split'\]",
        ),
        (
            CSV.replace("0.3,4", "0.3,four"),
            {"label_column": "species"},
            r"line 3, column 'weight': 'four' is not a number",
        ),
        (
            CSV.replace("0.3,4", "0.3,"),
            {"label_column": "species"},
            r"line 3, column 'weight': the cell is empty \(a missing value; 1 in this column\)\. "
            r"Fill the missing cells",
        ),
        (
            CSV.replace("0.3,4", "0.3,nan"),
            {"label_column": "species"},
            r"line 3, column 'weight': 'nan' is NaN or infinite",
        ),
        (
            CSV,
            {"label_column": "species", "classes": "dog,cat"},
            r"line 4: label 'mouse' is not among the stated classes",
        ),
        (
            CSV.replace("mouse,train", "mouse,validate"),
            {"label_column": "species"},
            r"line 4: split is 'validate'",
        ),
        (CSV.replace(",test", ",train"), {"label_column": "species"}, r"no row has split=test"),
        # no split column: drawn, stratified, which needs two rows of each class
        ("a,label\n1,0\n2,1\n", {}, r"class '0' has a single row: a stratified split needs"),
        ("a,label\n1,0,7\n", {}, r"line 2: 3 cells, but the header names 2 columns"),
        ("", {}, r"is empty; a CSV needs a header row"),
        (
            "a,label,split\n1,0,train\n2,99999999999999999999,test\n",
            {},
            r"labels must be integers 0..K-1; found values beyond int64",
        ),
        ('a,label,split\n1,0,train\n2,"1"x,test\n', {}, r"not a readable CSV file"),
    ],
)
def test_csv_errors_name_the_row_and_column(tmp_path, text, kw, message):
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"csv:{tmp_path / 'data.csv'}", **kw)


def test_csv_that_is_not_text_and_label_column_elsewhere(tmp_path):
    (tmp_path / "table.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(50))
    with pytest.raises(DatasetError, match="not a UTF-8 text CSV"):
        load_dataset(f"csv:{tmp_path / 'table.csv'}")
    with pytest.raises(DatasetError, match="applies to csv:PATH datasets only"):
        load_dataset("moons", label_column="label")
    with pytest.raises(DatasetError, match=f"No such file: {tmp_path / 'b.csv'}"):
        load_dataset(f"csv:{tmp_path / 'table.csv'},{tmp_path / 'b.csv'}")


# --- image folders and the registry ---------------------------------------------------------------


def _folder(root, classes=("cat", "dog", "fox")):
    # each class's images are filled with its own grey value, so a label can be checked against
    # pixels
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(np.full((4, 4), 10 * (i + 1), np.uint8)).save(
                root / split / c / "0.png"
            )
    return f"imagefolder:{root}"


def test_image_folder_follows_the_stated_class_order(tmp_path):
    name = _folder(tmp_path / "pets")
    plain = load_dataset(name, root=tmp_path / "cache")
    assert plain.classes == ["cat", "dog", "fox"] and plain.class_order == "alphabetical"
    stated = load_dataset(
        name, root=tmp_path / "cache", classes=["fox", "cat", "dog"]
    )  # from the cache
    assert stated.classes == ["fox", "cat", "dog"] and stated.class_order == "stated"
    grey_of = {"cat": 10, "dog": 20, "fox": 30}
    for x, y in zip(stated.x_train, stated.y_train, strict=True):
        assert x.max().item() == grey_of[stated.classes[y]]
    assert stated.y_train.tolist() == [1, 2, 0]  # the files are still listed cat, dog, fox
    with pytest.raises(
        DatasetError, match=r"no folder for \['cow'\]; folders not named: \['fox'\]"
    ):
        load_dataset(name, root=tmp_path / "cache", classes="cat,dog,cow")
    assert signature(name, classes="fox,cat,dog") == ((1, 4, 4), ["fox", "cat", "dog"], 3)
    meta = {"input_shape": [1, 4, 4], "num_classes": 3, "class_names": ["fox", "cat", "dog"]}
    assert incompatibility(meta, name).startswith("different classes")
    assert incompatibility(meta, name, classes="fox,cat,dog") is None


def test_image_folder_normalization_default_auto_and_stated(tmp_path):
    name = _folder(tmp_path / "pets")
    d = load_dataset(name, root=tmp_path / "cache")
    assert d.normalization == COMPUTED and d.mean[0] == pytest.approx(20 / 255, abs=1e-5)
    assert load_dataset(name, root=tmp_path / "cache", mean="auto").mean == d.mean
    s = load_dataset(name, root=tmp_path / "cache", mean=0.5, std=[0.25])
    assert s.mean == (0.5,) and s.std == (0.25,) and s.normalization == STATED
    with pytest.raises(
        DatasetError, match=r"std has 3 values but .*pets has 1 channel; give one value per channel"
    ):
        load_dataset(name, root=tmp_path / "cache", std="0.2,0.2,0.2")


def test_registry_datasets_keep_their_order_and_check_a_stated_one():
    d = load_dataset("moons")
    assert d.class_order == "registry" and d.normalization == COMPUTED
    assert load_dataset("moons", classes="0,1").classes == ["0", "1"]
    with pytest.raises(DatasetError, match=r"moons's classes are fixed by the registry \(0, 1\)"):
        load_dataset("moons", classes="1,0")
    with pytest.raises(DatasetError, match="classes are fixed"):  # refused before any download
        load_dataset("cifar10", root="/nonexistent", download=False, classes="cat,dog")
    s = load_dataset("moons", mean=[1, 2], std="auto")
    assert (
        s.mean == (1.0, 2.0)
        and s.std == d.std
        and s.normalization == "mean stated; std " + COMPUTED
    )
    with pytest.raises(DatasetError, match="mean has 3 values but moons has 2 features"):
        load_dataset("moons", mean="1,2,3")


def test_normalization_none_auto_and_stated_on_own_numbers(tmp_path):
    a = _arrays(n_train=400, features=(2,))
    name = _npz(tmp_path / "a.npz", **a)
    auto = load_dataset(name, mean="auto", std="auto")
    assert auto.normalization == COMPUTED
    assert auto.mean == pytest.approx(tuple(a["x_train"].mean(0)), abs=1e-5)
    assert auto.std == pytest.approx(tuple(a["x_train"].std(0, ddof=1)), abs=1e-5)
    xb, _ = next(iter(Batches(auto.x_train, auto.y_train, auto.mean, auto.std, 400, shuffle=False)))
    assert xb.mean(0).abs().max() < 1e-4 and (xb.std(0) - 1).abs().max() < 1e-3
    stated = load_dataset(name, mean=2, std="3")  # one value, broadcast per feature
    assert stated.mean == (2.0, 2.0) and stated.std == (3.0, 3.0) and stated.normalization == STATED
    # uint8 images: "auto" in [0, 1] units per channel
    img = _arrays(features=(3, 4, 4), dtype=np.uint8)
    d = load_dataset(_npz(tmp_path / "img.npz", **img), mean="auto")
    assert d.mean == pytest.approx(tuple(img["x_train"].mean((0, 2, 3)) / 255), abs=1e-5)
    assert d.std == (1.0, 1.0, 1.0) and d.normalization == "mean " + COMPUTED + "; std " + AS_IS
    # float inputs with several axes take one value for all
    cube = load_dataset(_npz(tmp_path / "cube.npz", **_arrays(features=(2, 5))), mean="auto")
    assert len(cube.mean) == 1 and cube.mean[0] == pytest.approx(2.0, abs=0.5)
    with pytest.raises(DatasetError, match="takes a single one"):
        load_dataset(_npz(tmp_path / "cube.npz", **_arrays(features=(2, 5))), std="1,2")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"std": "0"}, "std must be > 0"),
        ({"std": [1, -1]}, "std must be > 0"),
        ({"mean": "nan"}, "finite"),
        ({"mean": "1e999"}, "finite"),
        ({"mean": "a,1"}, "'a' is not a number"),
        ({"mean": True}, "must be 'auto' or numbers"),
        ({"mean": ""}, "'' is not a number"),
        ({"classes": [1, 2]}, r"names \(strings\)"),
        ({"classes": "a,,b"}, "empty name"),
        ({"classes": ["a", "b", "a"]}, r"names \['a'\] more than once"),
    ],
)
def test_bad_options_are_refused_before_loading(kw, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("npz:/does/not/exist.npz", **kw)  # the option is checked before the file


# --- the catalogue and the CLI's options ----------------------------------------------------------


def test_catalogue_signature_of_own_files(tmp_path):
    name = _npz(tmp_path / "img.npz", **_arrays(features=(1, 8, 8), dtype=np.uint8, k=10))
    assert signature(name) == (
        (1, 8, 8),
        None,
        10,
    )  # label numbers only: the count is what is checked
    meta = {"input_shape": [1, 8, 8], "num_classes": 10, "class_names": [str(i) for i in range(10)]}
    assert incompatibility(meta, name) is None
    assert (
        incompatibility({**meta, "num_classes": 3}, name) == "10 classes, the model has 3 outputs"
    )
    (tmp_path / "pets.csv").write_text(CSV)
    csv_name = f"csv:{tmp_path / 'pets.csv'}"
    assert signature(csv_name, label_column="species") == ((2,), ["cat", "dog", "mouse"], 3)
    assert "no label column 'label'" in incompatibility(meta, csv_name)
    assert incompatibility(meta, f"npz:{tmp_path / 'gone.npz'}").startswith("No such file")


def test_data_options_parse_the_cli_flags():
    from pof.cli import build_parser

    args = build_parser().parse_args(
        [
            "evaluate",
            "m.safetensors",
            "--dataset",
            "csv:a.csv",
            "--classes",
            "cat, dog",
            "--label-column",
            "kind",
            "--mean",
            "auto",
            "--std",
            "0.5,0.25",
        ]
    )
    assert data_options(args) == {
        "classes": ["cat", "dog"],
        "label_column": "kind",
        "mean": "auto",
        "std": (0.5, 0.25),
    }
    assert data_options(argparse.Namespace()) == {
        "classes": None,
        "label_column": None,
        "mean": None,
        "std": None,
    }
    with pytest.raises(DatasetError, match="--label-column"):
        data_options(argparse.Namespace(label_column="  "))


_values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.one_of(st.text(max_size=8), st.floats(), st.integers(), st.none()), max_size=5),
    st.text(alphabet="0123456789.,-+eEinfa ", max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(classes=_values, label_column=_values, mean=_values, std=_values)
def test_data_options_raise_only_dataset_errors(classes, label_column, mean, std):
    try:
        out = data_options(
            argparse.Namespace(classes=classes, label_column=label_column, mean=mean, std=std)
        )
    except DatasetError:
        return
    for key in ("mean", "std"):
        v = out[key]
        assert (
            v is None
            or v == "auto"
            or (isinstance(v, tuple) and v and all(math.isfinite(f) for f in v))
        )
    assert out["std"] in (None, "auto") or min(out["std"]) > 0
    assert out["classes"] is None or (
        len(set(out["classes"])) == len(out["classes"]) and all(out["classes"])
    )


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40))
def test_parse_stats_of_any_text_is_a_value_or_a_dataset_error(text):
    try:
        v = parse_stats(text, "std")
    except DatasetError:
        return
    assert v == "auto" or all(math.isfinite(f) and f > 0 for f in v)
