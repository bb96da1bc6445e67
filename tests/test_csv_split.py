"""A CSV without a split column: split here (seeded, stratified), stated and recorded with the run;
categorical and missing cells and fractional labels refused by column and line, saying what to do.
Through the loader and, end to end, the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from pof.data.load import load_dataset
from pof.data.names import DatasetError
from pof.models.metadata import read_metadata

SPECIES = ["cat"] * 50 + ["dog"] * 30 + ["eel"] * 20  # imbalanced, so stratification shows


def _write(path, labels=SPECIES, header="a,b,species", cells=None):
    rng = np.random.default_rng(1)
    rows = [header]
    for i, label in enumerate(labels):
        a, b = rng.normal(size=2) + len(label) * (i % 3)
        rows.append(cells(i, a, b, label) if cells else f"{a:.4f},{b:.4f},{label}")
    path.write_text("\n".join(rows) + "\n")
    return f"csv:{path}"


def _counts(y, classes):
    return {c: int((y == i).sum()) for i, c in enumerate(classes)}


def test_a_csv_without_split_column_is_split_seeded_and_stratified(tmp_path):
    name = _write(tmp_path / "pets.csv")
    d = load_dataset(name, label_column="species")
    assert (len(d.x_train), len(d.x_test)) == (80, 20)
    # each class keeps its share in both splits
    assert _counts(d.y_test, d.classes) == {"cat": 10, "dog": 6, "eel": 4}
    assert d.options == {"test_fraction": 0.2, "split_seed": 0}
    assert "20 of 100 rows (0.2) for testing, stratified by label, seed 0" in d.describe()
    again = load_dataset(name, label_column="species")
    assert np.array_equal(again.x_test.numpy(), d.x_test.numpy())  # the seed fixes the rows
    other = load_dataset(name, label_column="species", split_seed=7, test_fraction=0.3)
    assert _counts(other.y_test, other.classes) == {"cat": 15, "dog": 9, "eel": 6}
    assert other.options == {"test_fraction": 0.3, "split_seed": 7}
    every = np.concatenate([other.x_train.numpy(), other.x_test.numpy()])
    assert sorted(map(tuple, every)) == sorted(
        map(tuple, np.concatenate([d.x_train.numpy(), d.x_test.numpy()]))
    )  # the same rows, told apart differently


@pytest.mark.parametrize(
    ("cells", "kw", "message"),
    [
        (  # a categorical feature: named, with its values, and what to do
            lambda i, a, b, s: f"{a:.3f},{'red' if i % 2 else 'blue'},{s}",
            {},
            r"line 2, column 'b': 'blue' is not a number; the column holds text in 100 rows "
            r"\(\['blue', 'red'\]\), a categorical column\. Encode it as numbers",
        ),
        (  # missing cells
            lambda i, a, b, s: f"{a:.3f},{'' if i in (4, 9) else f'{b:.3f}'},{s}",
            {},
            r"line 6, column 'b': the cell is empty \(a missing value; 2 in this column\)\. Fill",
        ),
        (  # a continuous target is not a class label
            lambda i, a, b, s: f"{a:.3f},{b:.3f},{(i % 3) + 0.5}",
            {},
            r"line 2: the label '0.5' is a number but not an integer; .* bin it into classes",
        ),
        (  # a split column already says which rows are for testing
            lambda i, a, b, s: f"{a:.3f},{b:.3f},{s},{'test' if i % 5 == 0 else 'train'}",
            {"test_fraction": 0.3},
            r"has a split column.*test_fraction / split_seed apply to a CSV without one",
        ),
        (lambda i, a, b, s: f"{a:.3f},{b:.3f},{s}", {"test_fraction": 1.5}, r"between 0 and 1"),
        (lambda i, a, b, s: f"{a:.3f},{b:.3f},{s}", {"split_seed": -1}, r"from 0 to 2\^32-1"),
    ],
)
def test_bad_cells_labels_and_split_options_are_refused_saying_what_to_do(
    tmp_path, cells, kw, message
):
    header = "a,b,species,split" if "split" in message else "a,b,species"
    name = _write(tmp_path / "t.csv", header=header, cells=cells)
    with pytest.raises(DatasetError, match=message):
        load_dataset(name, label_column="species", **kw)


def test_integer_valued_number_labels_are_classes_and_split_options_need_a_csv(tmp_path):
    name = _write(tmp_path / "n.csv", cells=lambda i, a, b, s: f"{a:.3f},{b:.3f},{i % 2}.0")
    d = load_dataset(name, label_column="species")
    assert d.class_order == "numeric" and d.num_classes == 2
    with pytest.raises(DatasetError, match="--test-fraction applies to csv:PATH"):
        load_dataset("digits", test_fraction=0.1)


def _pof(*args, check=0):
    proc = subprocess.run(
        [sys.executable, "-m", "pof", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == check, proc.stderr[-3000:]
    return proc


def test_the_split_is_stated_recorded_and_reused_by_the_commands(tmp_path, pof_main):
    name = _write(tmp_path / "pets.csv")
    run = tmp_path / "run"
    args = ["pretrain", "--dataset", name, "--label-column", "species", "--model", "mlp"]
    out = _pof(*args, "--epochs", "1", "--test-fraction", "0.3", "--split-seed", "5", "--out", run)
    assert "no split column, so 0.3 of each class's rows were held out for testing" in out.stdout
    assert "seed 5" in out.stdout
    ckpt = run / "checkpoints" / "final.safetensors"
    recorded = read_metadata(ckpt)["data_options"]
    assert recorded["test_fraction"] == 0.3 and recorded["split_seed"] == 5
    assert (
        json.loads((run / "config.json").read_text())["config"]["data_options"]["split_seed"] == 5
    )
    # evaluated without any data flag: the recorded split, not the default one
    shown = _pof("evaluate", ckpt).stdout
    assert "70 train / 30 test" in shown
    assert "30 of 100 rows (0.3) for testing, stratified by label, seed 5" in shown
    # a categorical column is refused by name before any run folder is made
    bad = _write(tmp_path / "bad.csv", cells=lambda i, a, b, s: f"{a:.3f},x{i % 3},{s}")
    # (in this process, conftest.main_in_process: the commands above ran for real)
    refused = pof_main(*args[:2], bad, *args[3:], "--out", tmp_path / "never")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "column 'b'" in refused.stderr and "Encode it as numbers" in refused.stderr
    assert not (tmp_path / "never").exists()


def test_the_inspect_card_states_the_drawn_split(tmp_path, runs_root):
    from test_inspect_app import _inspect, _radio, _text

    from pof.training.pretrain import PretrainConfig, pretrain

    name = _write(tmp_path / "pets.csv", header="a,b,label")  # the page offers 'label' by itself
    cfg = PretrainConfig(model="mlp", dataset=name, epochs=1, data_options={"split_seed": 3})
    ckpt = pretrain(cfg, tmp_path / "run").checkpoint("final")
    at = _inspect()
    _radio(at, "Checkpoint A from").set_value("a path on this server").run()
    _text(at, "Path of the model file").set_value(str(ckpt)).run()
    assert not at.exception and not at.error, at.error
    # the data line of the card: the split drawn with the recorded seed, not the default one
    assert any(
        "20 of 100 rows (0.2) for testing, stratified by label, seed 3" in c.value
        for c in at.caption
    ), ([c.value for c in at.caption], [(s.label, s.value) for s in at.selectbox])
