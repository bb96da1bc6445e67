"""Models people really have, made for real in the tests: a torchvision resnet18 state dict, a
module of the user's own class in its own file (as a Lightning-style .ckpt and as a training-script
dict), a torch.export program, arrays and a CSV of their own; each loads and gets a per-layer
table. And what must be refused: pickled modules, TorchScript, tampered programs."""

import json
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
import torchvision
from conftest import ROOT, run_cli

from analysis.measures.layers import layer_report
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.formats import CheckpointError, ModelSource
from pof.models.loading import import_checkpoint, load_checkpoint
from pof.models.metadata import read_metadata

USER_CODE = textwrap.dedent('''
    import torch.nn as nn

    class SmallVGG(nn.Module):
        """A user's own VGG-like net; its last layer is `head.fc`, not "classifier"."""
        def __init__(self, num_classes=3, width=8):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Sequential()
            self.head.add_module("fc", nn.Linear(2 * width, num_classes))

        def forward(self, x):
            return self.head(self.body(x))

    class TabularMLP(nn.Module):
        def __init__(self, features=4, num_classes=3):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(features, 16), nn.Tanh(), nn.Linear(16, num_classes))

        def forward(self, x):
            return self.net(x)

    def build(num_classes=3, width=8):
        return SmallVGG(num_classes, width)

    def tabular(num_classes=3):
        return TabularMLP(4, num_classes)
''')


@pytest.fixture
def user(tmp_path):
    """The user's folder: their model code and their own image arrays (3 classes, 3x16x16)."""
    (tmp_path / "mynets.py").write_text(USER_CODE)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 3, 16, 16), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "images.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    return tmp_path


def _factory(user):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mynets_for_test", user / "mynets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[spec.name] = (
        module  # importable, as the user's own module is when they pickle a model
    )
    return module


def _table(model, meta, dataset, n=40, probes=4, max_steps=6, **kw):
    """A small per-layer table: few images, probes and Lanczos steps (the numbers' accuracy is
    tested in test_layers.py; here, that every layer of the user's model gets its row)."""
    x = Batches(dataset.x_train, dataset.y_train, meta["mean"], meta["std"], n, shuffle=False)
    return layer_report(
        model,
        [next(iter(x))],
        classifier=meta["classifier"],
        probes=probes,
        max_steps=max_steps,
        **kw,
    )


def test_a_torchvision_resnet18_state_dict(user):
    theirs = torchvision.models.resnet18(num_classes=3)
    torch.save(theirs.state_dict(), user / "resnet18.pth")
    data = load_dataset(f"npz:{user / 'images.npz'}")
    model, meta = load_checkpoint(
        user / "resnet18.pth", data, source=ModelSource("torchvision:resnet18")
    )
    # torchvision's own resnet18 (7x7 stem, max-pool), its classes read off the weights
    assert model.conv1.kernel_size == (7, 7) and model.fc.out_features == 3
    assert meta["classifier"] == "fc" and "last nn.Linear" in meta["split"]
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), theirs.eval()(x))
    # the registry's CIFAR variant is another network: its keys do not fit
    with (
        torch.no_grad(),
        pytest.raises(
            CheckpointError,
            match=r"does not fit resnet18-cifar: 122 missing(.|\n)*classifier.weight +fc.weight",
        ),
    ):
        load_checkpoint(user / "resnet18.pth", data, source=ModelSource("resnet18-cifar"))
    # 20 convolutions, 20 batch norms, fc: every layer's trace in one pass of 2 probes; each block
    # eigenvalue would cost a few full products (seconds each for 11M parameters on 2 CPU cores),
    # which the CLI's --traces-only leaves out too
    report = _table(model, meta, data, n=4, probes=2, max_steps=2, seed=0, block_eigenvalues=False)
    rows = {r.name: r for r in report.rows}
    assert (
        rows["fc"].is_classifier
        and rows["conv1"].kind == "conv"
        and rows["bn1"].kind == "batchnorm"
    )
    assert len(rows) == 41 and all(
        np.isfinite(r.trace) and r.top_eigenvalue is None for r in rows.values()
    )
    assert sum(r.trace for r in rows.values()) == pytest.approx(report.whole.trace)
    assert report.hvp.trace == 2 and report.hvp.blocks == 0


def test_the_users_own_class_as_lightning_and_script_dicts(user):
    mine = _factory(user).build()
    mine.body[1].running_mean.uniform_()  # trained-looking statistics, so a mix-up would show
    lightning = {
        "state_dict": {f"model.{k}": v for k, v in mine.state_dict().items()},
        "epoch": 7,
        "global_step": 70,
        "pytorch-lightning_version": "2.4.0",
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "hyper_parameters": {"lr": 0.1},
    }
    torch.save(lightning, user / "last.ckpt")
    torch.save(
        {"model": mine.state_dict(), "optimizer": {"lr": 0.1}, "epoch": 3}, user / "checkpoint.pt"
    )
    data = load_dataset(f"npz:{user / 'images.npz'}")
    arch = f"{user / 'mynets.py'}:build"
    for name in ("last.ckpt", "checkpoint.pt"):
        model, meta = load_checkpoint(user / name, data, source=ModelSource(arch))
        assert torch.equal(model.body[1].running_mean, mine.body[1].running_mean)
        assert meta["classifier"] == "head.fc" and meta["arch"] == arch
    assert meta["provenance"]["format"] == "torch"
    model, meta = load_checkpoint(user / "last.ckpt", data, source=ModelSource(arch))
    assert meta["provenance"]["key_notes"] == ["stripped the prefix 'model.'"]
    rows = _table(model, meta, data, seed=1).rows
    assert [r.name for r in rows] == ["body.0", "body.1", "body.4", "body.5", "head.fc"]
    assert [r.is_classifier for r in rows] == [False] * 4 + [True]


def test_keys_that_do_not_match_get_a_suggested_mapping_that_works(user):
    mine = _factory(user).build()
    renamed = {k.replace("body.", "backbone.layers."): v for k, v in mine.state_dict().items()}
    torch.save(renamed, user / "renamed.pt")
    data = load_dataset(f"npz:{user / 'images.npz'}")
    arch = f"{user / 'mynets.py'}:build"
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(user / "renamed.pt", data, source=ModelSource(arch))
    message = str(e.value)
    assert "body.0.weight" in message and "backbone.layers.0.weight" in message  # side by side
    assert "--key-map backbone.layers.=body." in message
    model, _ = load_checkpoint(
        user / "renamed.pt", data, source=ModelSource(arch, key_map=["backbone.layers.=body."])
    )
    assert torch.equal(model.body[0].weight, mine.body[0].weight)


def test_a_torch_export_program_needs_no_code(user):
    mine = _factory(user).build().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(mine, (torch.randn(4, 3, 16, 16),), dynamic_shapes=({0: batch},))
    torch.export.save(program, user / "model.pt2")
    data = load_dataset(f"npz:{user / 'images.npz'}")
    model, meta = load_checkpoint(user / "model.pt2", data)
    x = torch.randn(5, 3, 16, 16)
    assert torch.allclose(model(x), mine(x), atol=1e-6)
    assert meta["arch"] == f"export:{user / 'model.pt2'}" and meta["classifier"] is None
    # PoF trains the feature extractor: a fixed graph cannot be, and the split says what to save
    assert "fixed graph" in meta["split"] and "state_dict()" in meta["split"]
    rows = _table(model, meta, data, seed=2).rows
    assert [(r.name, r.kind) for r in rows] == [
        ("body.0", "conv"),
        ("body.1", "batchnorm"),
        ("body.4", "conv"),
        ("body.5", "batchnorm"),
        ("head.fc", "linear"),
    ]
    # imported as a project checkpoint, it is still a program: the same explanation
    import_checkpoint(user / "model.pt2", user / "imported.safetensors", data)
    assert "fixed graph" in load_checkpoint(user / "imported.safetensors", data)[1]["split"]
    # a program traced for one batch size runs any batch in chunks of it, the last one padded
    torch.export.save(torch.export.export(mine, (torch.randn(4, 3, 16, 16),)), user / "fixed.pt2")
    fixed, meta = load_checkpoint(user / "fixed.pt2", data)
    assert meta["provenance"]["fixed_batch"] == 4
    for n in (1, 4, 9):
        x = torch.randn(n, 3, 16, 16)
        assert torch.allclose(fixed(x), mine(x), atol=1e-6)
    # ... unless its batch norm uses batch statistics (exported in training mode): rows mix
    program = torch.export.export(mine.train(), (torch.randn(4, 3, 16, 16),))
    torch.export.save(program, user / "train-mode.pt2")
    with pytest.raises(CheckpointError, match=r"exported in training mode(.|\n)*model.eval\(\)"):
        load_checkpoint(user / "train-mode.pt2", data)


def test_a_program_with_a_pickled_payload_is_refused_unread(user, tmp_path, monkeypatch):
    mine = _factory(user).build().eval()
    program = torch.export.export(
        mine, (torch.randn(4, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("b")},)
    )
    good = user / "model.pt2"
    torch.export.save(program, good)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    evil = user / "evil.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True  # torch.export.load would torch.load this piece unsafely
                data = json.dumps(config).encode()
                import io

                buf = io.BytesIO()
                torch.save({"x": Payload()}, buf)
                zout.writestr(
                    item.filename.rsplit("/", 1)[0] + "/" + first["path_name"] + "_evil",
                    buf.getvalue(),
                )
                first["path_name"] += "_evil"
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    with pytest.raises(CheckpointError, match="pickled Python object"):
        load_checkpoint(evil, load_dataset(f"npz:{user / 'images.npz'}"))
    assert not marker.exists()


def test_torchscript_and_pickled_modules_are_refused_with_what_to_save(user):
    mine = _factory(user).build().eval()
    torch.jit.script(mine).save(str(user / "model.ts"))
    torch.save(mine, user / "whole.pt")
    data = load_dataset(f"npz:{user / 'images.npz'}")
    with pytest.raises(CheckpointError, match=r"TorchScript is deprecated(.|\n)*torch.export.save"):
        load_checkpoint(user / "model.ts", data, source=ModelSource("cnn-small"))
    with pytest.raises(
        CheckpointError,
        match=r"pickled Python object \(mynets_for_test.SmallVGG\)(.|\n)*state_dict",
    ):
        load_checkpoint(user / "whole.pt", data, source=ModelSource(f"{user / 'mynets.py'}:build"))


def test_a_model_that_does_not_fit_the_data_is_refused_before_any_work(user):
    data = load_dataset(f"npz:{user / 'images.npz'}")
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), user / "five.pth")
    with pytest.raises(CheckpointError, match=r"returns \(2, 5\)(.|\n)*must return \(2, 3\)"):
        load_checkpoint(user / "five.pth", data, source=ModelSource("torchvision:resnet18"))
    torch.save(_factory(user).tabular().state_dict(), user / "tab.pt")
    with pytest.raises(
        CheckpointError, match=r"cannot take the inputs of npz:.*\(shape \(3, 16, 16\)\)"
    ):
        load_checkpoint(user / "tab.pt", data, source=ModelSource(f"{user / 'mynets.py'}:tabular"))


def test_cli_import_then_every_command_takes_it_as_it_is(user, tmp_path):
    """The practitioner's path from the README: the user's MLP on their own CSV."""
    rng = np.random.default_rng(1)
    rows = ["f1,f2,f3,f4,species,split"]
    names = ["setosa", "versicolor", "virginica"]
    for i in range(90):
        c = i % 3
        f = rng.normal(c, 0.3, 4)
        rows.append(
            ",".join(f"{v:.4f}" for v in f) + f",{names[c]},{'train' if i < 60 else 'test'}"
        )
    (user / "flowers.csv").write_text("\n".join(rows) + "\n")
    mlp = _factory(user).tabular()
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in mlp.state_dict().items()}}, user / "mlp.ckpt"
    )
    data = [
        "--dataset",
        f"csv:{user / 'flowers.csv'}",
        "--label-column",
        "species",
        "--classes",
        ",".join(names),
    ]
    out = tmp_path / "mlp.safetensors"
    proc = run_cli(
        "import",
        user / "mlp.ckpt",
        "--arch",
        f"{user / 'mynets.py'}:tabular",
        *data,
        "--out",
        out,
        check=0,
    )
    assert "classifier = net.2" in proc.stdout and out.exists()
    meta = read_metadata(out)
    assert (
        meta["class_names"] == names
        and meta["classifier"] == "net.2"
        and meta["provenance"]["kind"] == "imported"
    )
    # no --arch, no --dataset: the checkpoint says it all now
    evaluated = json.loads(run_cli("evaluate", out, "--json", check=0).stdout)
    direct = json.loads(
        run_cli(
            "evaluate",
            user / "mlp.ckpt",
            "--arch",
            f"{user / 'mynets.py'}:tabular",
            *data,
            "--json",
            check=0,
        ).stdout
    )
    assert evaluated["test"]["loss"] == pytest.approx(direct["test"]["loss"], abs=1e-6)
    import subprocess

    layers = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "layers",
            str(out),
            "--probes",
            "4",
            "--quiet",
            "--out",
            str(tmp_path / "results"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert layers.returncode == 0, layers.stderr
    assert "net.0" in layers.stdout and "net.2" in layers.stdout
    assert list((tmp_path / "results").glob("layers-*.csv"))


def test_alphabetical_class_order_meets_a_foreign_checkpoint_loudly(user, tmp_path):
    from PIL import Image

    for split, n in (("train", 4), ("test", 2)):
        for c in ("dog", "cat"):
            (tmp_path / "folder" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((16, 16, 3), i * 40, np.uint8)).save(
                    tmp_path / "folder" / split / c / f"{i}.png"
                )
    torch.save(_factory(user).build(num_classes=2).state_dict(), user / "pets.pt")
    proc = run_cli(
        "evaluate",
        user / "pets.pt",
        "--arch",
        f"{user / 'mynets.py'}:build",
        "--dataset",
        f"imagefolder:{tmp_path / 'folder'}",
        check=0,
    )
    assert "warning: The class order" in proc.stderr and "alphabetically (cat, dog)" in proc.stderr
    stated = run_cli(
        "evaluate",
        user / "pets.pt",
        "--arch",
        f"{user / 'mynets.py'}:build",
        "--dataset",
        f"imagefolder:{tmp_path / 'folder'}",
        "--classes",
        "dog,cat",
        check=0,
    )
    # the order is settled; the untrained model is still at chance, which is said apart
    assert "The class order" not in stated.stderr and "near chance" in stated.stderr


def test_formats_are_told_apart_by_content_whatever_their_names(tmp_path):
    from safetensors.torch import save_file

    from pof.models.formats import sniff

    # a safetensors header length whose low byte is 0x80, a pickle's first byte: still safetensors
    name = next(
        n
        for n in range(1, 400)
        if (len(f'{{"w{"a" * n}":{{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}}}') + 7)
        // 8
        * 8
        % 256
        == 0x80
    )
    save_file({"w" + "a" * name: torch.zeros(3)}, str(tmp_path / "model.pt"))
    assert (tmp_path / "model.pt").read_bytes()[0] == 0x80 and sniff(
        tmp_path / "model.pt"
    ) == "safetensors"
    torch.save(
        {"w": torch.zeros(2)}, tmp_path / "legacy.safetensors", _use_new_zipfile_serialization=False
    )
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.bin")
    assert (
        sniff(tmp_path / "legacy.safetensors") == "torch" and sniff(tmp_path / "zip.bin") == "torch"
    )


def test_pretraining_on_a_csv_keeps_its_label_column_and_class_order(tmp_path):
    rng = np.random.default_rng(2)
    rows = ["a,b,species,split"]
    for i in range(120):
        c = i % 2
        f = rng.normal(2 * c, 0.5, 2)
        rows.append(f"{f[0]:.3f},{f[1]:.3f},{['cat', 'dog'][c]},{'train' if i < 90 else 'test'}")
    (tmp_path / "tab.csv").write_text("\n".join(rows) + "\n")
    run_cli(
        "pretrain",
        "--model",
        "mlp",
        "--dataset",
        f"csv:{tmp_path / 'tab.csv'}",
        "--label-column",
        "species",
        "--classes",
        "dog,cat",
        "--epochs",
        "2",
        "--out",
        tmp_path / "run",
        "--quiet",
        check=0,
    )
    meta = read_metadata(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert (
        meta["class_names"] == ["dog", "cat"] and meta["data_options"]["label_column"] == "species"
    )
    # no data flags: the checkpoint says how its data is read
    result = json.loads(
        run_cli(
            "evaluate", tmp_path / "run" / "checkpoints" / "final.safetensors", "--json", check=0
        ).stdout
    )
    assert (
        len(result["test"]["per_class_acc"]) == 2
        and result["dataset"] == f"csv:{tmp_path / 'tab.csv'}"
    )
