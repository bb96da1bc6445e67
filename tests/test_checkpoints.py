import json
import os

import pytest
import torch
from safetensors.torch import save_file

from pof.data.load import load_dataset
from pof.models.checkpoints import save_checkpoint
from pof.models.formats import CheckpointError
from pof.models.loading import load_checkpoint
from pof.models.metadata import file_sha256, read_metadata
from pof.models.networks import arch_args, build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _meta(d, arch="cnn-small"):
    return {
        "arch": arch,
        "arch_args": arch_args(arch),
        "num_classes": d.num_classes,
        "input_shape": list(d.input_shape),
        "mean": list(d.mean),
        "std": list(d.std),
        "dataset": "digits",
        "class_names": d.classes,
        "metrics": {"test_acc": 0.5},
        "provenance": {"kind": "test"},
    }


@pytest.fixture
def saved(tmp_path, digits):
    torch.manual_seed(0)
    model = build_model("cnn-small", digits.input_shape, 10)
    with torch.no_grad():  # non-trivial BN statistics, so buffers are checked too
        model(torch.randn(8, 1, 8, 8))
    path = save_checkpoint(tmp_path / "m.safetensors", model, _meta(digits))
    return model, path


def test_round_trip_is_exact_and_keeps_metadata(saved, digits):
    model, path = saved
    loaded, meta = load_checkpoint(path, dataset=digits)
    want, got = model.state_dict(), loaded.state_dict()
    assert list(want) == list(got) and want
    for (k, a), (k2, b) in zip(want.items(), got.items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert meta["class_names"] == digits.classes and meta["metrics"] == {"test_acc": 0.5}
    assert meta["format"] == "pof-checkpoint/1" and "version" in meta
    # what loading found out (the split, warnings) is added to the file's metadata, nothing changed
    assert read_metadata(path).items() <= meta.items() and not loaded.training
    assert meta["classifier"] == "classifier" and meta["warnings"] == [] and meta["nonfinite"] == []
    assert len(file_sha256(path)) == 64


def test_corrupt_and_truncated_files_are_refused_clearly(saved, tmp_path):
    _, path = saved
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(
        b"\x00" * 8 + os.urandom(1000)
    )  # recognized by content: no format starts like this
    with pytest.raises(CheckpointError, match="not a model file this tool reads"):
        load_checkpoint(junk)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(cut)
    with pytest.raises(CheckpointError, match="No such file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def _resave(model_state, meta, path):
    save_file(model_state, str(path), metadata={"pof": json.dumps(meta)})
    return path


def test_unknown_architecture(saved, digits, tmp_path):
    model, _ = saved
    meta = {**_meta(digits), "arch": "vgg99", "format": "pof-checkpoint/1"}
    path = _resave(model.state_dict(), meta, tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match=r"(?i)unknown architecture 'vgg99'"):
        load_checkpoint(path)


def test_missing_unexpected_and_misshapen_keys(saved, digits, tmp_path):
    model, _ = saved
    meta = {**_meta(digits), "format": "pof-checkpoint/1"}
    state = dict(model.state_dict())
    missing = {k: v for k, v in state.items() if k != "classifier.bias"}
    with pytest.raises(CheckpointError, match=r"1 missing, 0 unexpected(.|\n)*classifier\.bias"):
        load_checkpoint(_resave(missing, meta, tmp_path / "m.safetensors"))
    extra = {**state, "head.extra": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"0 missing, 1 unexpected(.|\n)*head\.extra"):
        load_checkpoint(_resave(extra, meta, tmp_path / "u.safetensors"))
    wide = build_model("cnn-small", (1, 8, 8), 10, width=16).state_dict()
    with pytest.raises(
        CheckpointError,
        match=r"16 of another shape(.|\n)*shapes: features\.0\.weight: "
        r"file \(16, 1, 3, 3\), model \(32, 1, 3, 3\)",
    ):
        load_checkpoint(_resave(wide, meta, tmp_path / "s.safetensors"))


def test_class_count_and_input_shape_must_match_the_dataset(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="10 output classes but moons has 2"):
        load_checkpoint(path, dataset=load_dataset("moons"))


def test_pytorch_state_dict_loads_only_as_plain_tensors(tmp_path, digits):
    model = build_model("cnn-small", digits.input_shape, 10)
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": model.state_dict()}, pt)
    with pytest.raises(CheckpointError, match="--arch"):
        load_checkpoint(pt, dataset=digits)
    loaded, meta = load_checkpoint(pt, dataset=digits, arch="cnn-small")
    assert torch.equal(loaded.classifier.weight, model.classifier.weight)
    assert meta["provenance"]["kind"] == "foreign" and meta["num_classes"] == 10


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('POF_PWNED', '/tmp/pof-pwned')}",))


def test_a_malicious_pickle_is_never_executed(tmp_path, digits, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("POF_PWNED", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="not loaded: unpickling it would run code"):
        load_checkpoint(evil, dataset=digits, arch="cnn-small")
    assert not marker.exists()


def test_foreign_safetensors_needs_an_architecture(tmp_path, digits):
    model = build_model("mlp", (1, 8, 8), 10)
    path = tmp_path / "f.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(CheckpointError, match="without this project's metadata"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="without this project's metadata"):
        read_metadata(path)
    loaded, _ = load_checkpoint(path, dataset=digits, arch="mlp")
    assert torch.equal(loaded.classifier.bias, model.classifier.bias)
