"""Weights saved under an unusual key of a checkpoint dict ({'epoch', 'model_state',
'optim_state'}) are found by fitting the model, and what was done to the keys (that key, a
stripped `module.` prefix) is said in the metadata and on the command line."""

import json

import pytest
import torch
from conftest import run_cli

from pof.data.load import load_dataset
from pof.models.formats import CheckpointError, ModelSource
from pof.models.loading import load_checkpoint
from pof.models.metadata import read_metadata
from pof.models.networks import build_model


def _trained_pair():
    """A cnn-small for digits after one real SGD step with momentum (so the optimizer's own state
    dict holds tensors too), and a second, different set of weights of the same shapes."""
    torch.manual_seed(0)
    model = build_model("cnn-small", (1, 8, 8), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = load_dataset("digits")
    x = data.x_test[:32].float() / 16
    torch.nn.functional.cross_entropy(model(x), data.y_test[:32]).backward()
    opt.step()
    other = build_model("cnn-small", (1, 8, 8), 10)
    return model, opt, other


def _same(model, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_the_one_state_dict_under_an_unusual_key_is_used_and_named(tmp_path):
    model, opt, _ = _trained_pair()
    path = tmp_path / "ckpt.pt"
    sd = model.state_dict()
    torch.save({"epoch": 3, "model_state": sd, "optim_state": opt.state_dict()}, path)
    loaded, meta = load_checkpoint(path, dataset=load_dataset("digits"), arch="cnn-small")
    assert _same(loaded, sd)
    assert meta["notes"] == ["read the weights under the key 'model_state'"]
    assert meta["provenance"]["key_notes"] == meta["notes"]


def test_several_state_dicts_that_fit_are_named_and_one_is_chosen_by_key(tmp_path):
    model, _, other = _trained_pair()
    path = tmp_path / "ema.pt"
    torch.save({"model_state": model.state_dict(), "ema_state": other.state_dict()}, path)
    digits = load_dataset("digits")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, dataset=digits, arch="cnn-small")
    assert "'model_state', 'ema_state'" in str(e.value)
    assert "--weights-key model_state" in str(e.value)
    source = ModelSource("cnn-small", weights_key="ema_state")
    loaded, meta = load_checkpoint(path, dataset=digits, source=source)
    assert _same(loaded, other.state_dict())
    assert meta["notes"] == ["read the weights under the key 'ema_state'"]
    with pytest.raises(CheckpointError, match="no state dict under 'ema'"):
        load_checkpoint(path, dataset=digits, source=ModelSource("cnn-small", weights_key="ema"))


def test_cli_says_which_key_and_which_prefix_it_used(tmp_path, pof_main):
    """...and takes --weights-key when several entries fit."""
    model, opt, other = _trained_pair()
    unusual, parallel = tmp_path / "unusual.pt", tmp_path / "parallel.pt"
    torch.save({"epoch": 3, "model_state": model.state_dict(), "optim": opt.state_dict()}, unusual)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, parallel)
    flags = ["--arch", "cnn-small", "--dataset", "digits"]
    proc = run_cli("evaluate", unusual, *flags, "--json", check=0)
    assert "note: read the weights under the key 'model_state'" in proc.stderr
    proc = run_cli("evaluate", parallel, *flags, "--json", check=0)
    assert "note: stripped the prefix 'module.'" in proc.stderr
    out = tmp_path / "imported.safetensors"
    run_cli("import", unusual, *flags, "--out", out, check=0)
    notes = read_metadata(out)["provenance"]["key_notes"]
    assert notes == ["read the weights under the key 'model_state'"]
    assert json.loads(run_cli("evaluate", out, "--json", check=0).stdout)["test"]["acc"] > 0
    several = tmp_path / "several.pt"
    torch.save({"model_state": model.state_dict(), "ema_state": other.state_dict()}, several)
    refused = pof_main("evaluate", several, *flags, check=2)  # in this process (conftest)
    assert "name the one to use with --weights-key model_state" in refused.stderr
    chosen = run_cli("evaluate", several, *flags, "--weights-key", "ema_state", check=0)
    assert "note: read the weights under the key 'ema_state'" in chosen.stderr
