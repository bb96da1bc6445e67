"""The Learn page's disk store (analysis.learn_store): an entry is computed once and read back
verified; a changed recipe or engine names a new entry; a corrupted or edited file, shipped or
written, is computed again, never used."""

import dataclasses
import json

import pytest
import torch

from analysis import learn, learn_store
from analysis.learn_results import EdgeOfStability
from analysis.learn_store import Store

TINY = learn.Recipe(points=60, hidden=(8,), max_steps=30)  # trains in a few milliseconds


def _eos(store: Store) -> EdgeOfStability:
    # a real engine result: 40 steps of gradient descent with lambda_max every 20
    return store.result(
        "eos", EdgeOfStability, lambda: learn.edge_of_stability(0.2, steps=40), eta=0.2
    )


@pytest.fixture
def stored_network(tmp_path):
    """TINY trained through a store in tmp_path/w; the store is unset afterwards."""
    store = Store(tmp_path / "w")
    learn.use_store(store)
    learn.train.cache_clear()
    try:
        yield store, learn.train(TINY)
    finally:
        learn.use_store(None)
        learn.train.cache_clear()


def test_a_result_is_computed_once_then_read_back_equal_in_a_new_store(tmp_path):
    first = Store(tmp_path)
    fresh = _eos(first)
    assert len(first.computed) == 1 and len(list(tmp_path.glob("eos-*.json"))) == 1
    again = Store(tmp_path)  # as a new server would
    assert _eos(again) == fresh and again.computed == []


def test_a_trained_network_is_read_back_with_its_exact_weights(stored_network, tmp_path):
    store, trained = stored_network
    assert [n.split("-")[0] for n in store.computed] == ["trained"]
    learn.train.cache_clear()  # a new process: from disk, not from memory
    read = learn.train(TINY)
    assert len(store.computed) == 1  # nothing trained again
    assert read.summary() == trained.summary()
    read_state = read.model.state_dict()
    for name, a in trained.model.state_dict().items():
        assert torch.equal(a, read_state[name]), name
    x, _ = learn.tensors(TINY.dataset, TINY.points, TINY.noise, "test")
    assert torch.equal(read.model(x), trained.model(x))


def test_a_changed_recipe_or_engine_is_computed_again(stored_network, monkeypatch):
    store, _ = stored_network
    learn.train(dataclasses.replace(TINY, lr=0.05))
    assert len(store.computed) == 2  # another recipe: another network
    learn.train.cache_clear()
    monkeypatch.setattr(learn_store, "_engine", "an edited engine")
    learn.train(TINY)
    assert len(store.computed) == 3  # the same recipe, another engine: trained again


def test_a_corrupted_result_or_weights_file_is_computed_again_not_used(
    stored_network, tmp_path, capsys
):
    store, trained = stored_network
    (weights,) = (tmp_path / "w").glob("trained-*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one weight's bits flipped: still a readable safetensors file
    weights.write_bytes(bytes(data))
    learn.train.cache_clear()
    again = learn.train(TINY)
    assert len(store.computed) == 2 and "do not match their checksum" in capsys.readouterr().err
    assert torch.equal(again.model.classifier.bias, trained.model.classifier.bias)

    fresh = _eos(store)
    (entry,) = (tmp_path / "w").glob("eos-*.json")
    d = json.loads(entry.read_text())
    d["result"]["lam_max"][0] *= 0.5  # an edited number: valid JSON, wrong result
    entry.write_text(json.dumps(d))
    assert _eos(store) == fresh and len(store.computed) == 4
    assert "does not match its checksum" in capsys.readouterr().err
    entry.write_text("{ not json")
    assert _eos(store) == fresh and len(store.computed) == 5


def test_a_corrupted_shipped_entry_is_computed_into_the_writable_folder_and_left_alone(tmp_path):
    shipped = tmp_path / "shipped"
    fresh = _eos(Store(shipped))
    (entry,) = shipped.glob("eos-*.json")
    d = json.loads(entry.read_text())
    d["result"]["loss"][-1] = 0.0
    entry.write_text(json.dumps(d))
    bad = entry.read_bytes()
    store = Store(tmp_path / "runs-cache", shipped=shipped)
    assert _eos(store) == fresh and len(store.computed) == 1
    assert entry.read_bytes() == bad  # the shipped folder is never written
    assert len(list((tmp_path / "runs-cache").glob("eos-*.json"))) == 1
    again = Store(tmp_path / "runs-cache", shipped=shipped)
    assert _eos(again) == fresh and again.computed == []  # now read from the writable copy
