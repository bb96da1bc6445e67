"""The bundled checkpoints: each is what its manifest says, and only fitting datasets are
offered."""

import json
import shutil

import pytest
from conftest import run_cli

from pof.data.load import load_dataset
from pof.data.names import DATASETS, SIGNATURES
from pof.models.catalogue import DEFAULT_MODEL, bundled, bundled_card, incompatibility, verify
from pof.models.checkpoints import save_checkpoint
from pof.models.formats import CheckpointError
from pof.models.loading import load_checkpoint
from pof.models.metadata import read_metadata
from pof.models.networks import count_parameters

ENTRIES = bundled()


def test_the_offline_default_and_the_four_kinds_of_model_are_bundled():
    assert DEFAULT_MODEL in ENTRIES
    assert {"digits-cnn-small-sgd", "digits-cnn-small-sam", "moons-mlp"} <= set(ENTRIES)
    assert sum(e["bytes"] for e in ENTRIES.values()) < 5_000_000  # small enough to ship


@pytest.mark.parametrize("entry_id", sorted(ENTRIES))
def test_each_bundled_file_matches_its_manifest(entry_id):
    entry = ENTRIES[entry_id]
    verify(entry)  # sha256
    model, meta = load_checkpoint(entry["path"])
    assert meta["arch"] == entry["arch"] and meta["dataset"] == entry["dataset"]
    assert count_parameters(model) == entry["parameters"]
    assert meta["metrics"]["test_acc"] == entry["test_acc"]
    assert incompatibility(meta, entry["dataset"]) is None


@pytest.mark.parametrize("entry_id", sorted(ENTRIES))
def test_a_bundled_models_card_read_without_torch_is_the_loaded_models(entry_id):
    entry = ENTRIES[entry_id]
    card = bundled_card(entry)
    model, meta = load_checkpoint(entry["path"])
    assert card["parameters"] == count_parameters(model)
    assert card["split"] == meta["split"]  # "classifier = classifier (Linear 128 -> 10), ..."
    assert card["meta"].pop("nonfinite") == meta["nonfinite"] == []
    assert card["meta"] == read_metadata(entry["path"])


def test_the_card_read_without_torch_names_nan_weights_as_loading_does(tmp_path):
    entry = ENTRIES[DEFAULT_MODEL]
    model, meta = load_checkpoint(entry["path"])
    model.classifier.weight.data[3, 5] = float("nan")
    model.features[1].running_var.data[0] = float("inf")  # a buffer counts too
    save_checkpoint(tmp_path / "nan.safetensors", model, meta)
    card = bundled_card({**entry, "path": str(tmp_path / "nan.safetensors")})
    loaded = load_checkpoint(tmp_path / "nan.safetensors")[1]["nonfinite"]
    assert sorted(card["meta"]["nonfinite"]) == sorted(loaded)
    assert sorted(loaded) == ["classifier.weight", "features.1.running_var"]


@pytest.mark.parametrize(
    "entry_id", [k for k in sorted(ENTRIES) if ENTRIES[k]["dataset"] in ("digits", "moons")]
)
def test_offline_bundled_models_reach_their_recorded_test_accuracy(entry_id):
    entry = ENTRIES[entry_id]
    out = run_cli("evaluate", entry["path"], "--json", check=0)
    assert json.loads(out.stdout)["test"]["acc"] == pytest.approx(entry["test_acc"], abs=1e-9)


def test_a_modified_bundled_file_is_refused(tmp_path):
    entry = dict(ENTRIES[DEFAULT_MODEL])
    copy = tmp_path / "m.safetensors"
    shutil.copy(entry["path"], copy)
    with open(copy, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x00\x01")
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        verify({**entry, "path": str(copy)})


def test_static_signatures_agree_with_the_loaded_offline_datasets():
    for name in ("digits", "moons", "circles", "spirals"):
        d = load_dataset(name)
        shape, classes = SIGNATURES[name]
        assert d.input_shape == shape and d.classes == classes
    assert set(SIGNATURES) == set(DATASETS)


def test_incompatible_datasets_get_a_reason():
    _, meta = load_checkpoint(ENTRIES[DEFAULT_MODEL]["path"])
    assert incompatibility(meta, "moons") == "inputs are (2,), the model expects (1, 8, 8)"
    assert incompatibility(meta, "cifar10").startswith("inputs are (3, 32, 32)")
    assert incompatibility({**meta, "input_shape": [3, 32, 32]}, "svhn") is None  # digits 0-9 too
    assert incompatibility({**meta, "input_shape": [3, 32, 32]}, "cifar10").startswith(
        "different classes"
    )
    assert (
        incompatibility({**meta, "input_shape": [3, 32, 32]}, "cifar100")
        == "100 classes, the model has 10 outputs"
    )
