"""Last layers that are not an nn.Linear: a 1x1 convolution before global average pooling (the
user's own class, torchvision's SqueezeNet with and without its ReLU), and torch.export programs
(a fixed graph: measured, never post-trained; a fixed-batch one run in chunks of its batch).
Every file is made here and goes through the real command line."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torchvision
from conftest import ROOT, run_cli
from torch import nn

from pof.curvature.lastlayer import features_and_probs, last_layer_hessian
from pof.models.split import ConvHead, split_model

NETS = textwrap.dedent('''
    import torch.nn as nn
    import torchvision

    class ConvHeadNet(nn.Module):
        """A user's own net whose classifier is a 1x1 convolution, then global pooling."""
        def __init__(self, num_classes=3, width=8):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(
                nn.Dropout(0.1), nn.Conv2d(2 * width, num_classes, 1),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            return self.head(self.body(x))

    def build(num_classes=3, width=8):
        return ConvHeadNet(num_classes, width)

    def squeezenet_linear_head(num_classes=3):
        """torchvision's SqueezeNet 1.1 with the ReLU after its 1x1 classifier removed."""
        model = torchvision.models.squeezenet1_1(num_classes=num_classes)
        model.classifier[2] = nn.Identity()
        return model
''')


@pytest.fixture
def user(tmp_path):
    """The user's folder: their model code and their own images (3 classes, 3x32x32)."""
    (tmp_path / "heads.py").write_text(NETS)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8)
    y = np.arange(48) % 3
    np.savez(tmp_path / "images.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
    return tmp_path


def _module(user):
    import importlib.util

    spec = importlib.util.spec_from_file_location("heads_for_test", user / "heads.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _analysis(*args):
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _post_train(ckpt, out, *args, check, cli=run_cli):
    """`python -m pof post-train` for real, or with cli=pof_main in this process (a refusal)."""
    return cli(
        "post-train", ckpt, "--method", "pof", "--epochs", "1", "--batch-size", "16",
        "--weak-batch-size", "16", "--out", out, *args, check=check,
    )  # fmt: skip


def test_a_conv_head_has_the_exact_last_layer_numbers_of_its_linear_twin(user):
    torch.manual_seed(0)
    mine = _module(user).build().eval()
    twin = nn.Sequential(mine.body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        twin[3].weight.copy_(mine.head[1].weight[:, :, 0, 0])
        twin[3].bias.copy_(mine.head[1].bias)
    x, y = torch.randn(40, 3, 32, 32), torch.arange(40) % 3
    split = split_model(mine, example=x[:4])  # no nn.Linear: its last 1x1 convolution
    assert split.classifier_name == "head.1" and isinstance(split.classifier, ConvHead)
    assert "1x1 Conv2d" in split.describe()
    conv = last_layer_hessian(*features_and_probs(mine, [(x, y)], split), top_k=3)
    linear = last_layer_hessian(*features_and_probs(twin, [(x, y)]), top_k=3)
    assert conv.dim == linear.dim == 3 * 17
    np.testing.assert_allclose(conv.spectrum, linear.spectrum, atol=1e-6)
    assert conv.trace == pytest.approx(linear.trace, abs=1e-6)


def test_the_users_conv_head_model_evaluates_measures_and_post_trains(user, tmp_path):
    torch.save(_module(user).build().state_dict(), user / "mine.pt")
    own = ["--arch", f"{user / 'heads.py'}:build", "--dataset", f"npz:{user / 'images.npz'}"]
    evaluated = run_cli("evaluate", user / "mine.pt", *own, check=0).stdout
    assert "classifier = head.1 (1x1 Conv2d on globally pooled features, as Linear 16 -> 3)" in (
        evaluated
    )
    layers = _analysis("layers", user / "mine.pt", *own, "--probes", "2", "--out", tmp_path / "r")
    assert layers.returncode == 0, layers.stderr
    assert "head.1 *" in layers.stdout or "head.1*" in layers.stdout.replace(" ", "")
    hessian = _analysis("hessian", user / "mine.pt", *own, "--json", "--out", tmp_path / "r")
    assert hessian.returncode == 0, hessian.stderr
    assert json.loads(hessian.stdout)["last_layer"]["dim"] == 3 * 17  # exact, on the conv head
    proc = _post_train(user / "mine.pt", tmp_path / "run", *own, check=0)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "classifier = head.1 (1x1 Conv2d" in config["split"], proc.stdout


def test_squeezenet_is_refused_naming_its_relu_and_works_without_it(user, tmp_path, pof_main):
    torch.save(torchvision.models.squeezenet1_1(num_classes=3).state_dict(), user / "squeeze.pt")
    data = ["--dataset", f"npz:{user / 'images.npz'}"]
    tv = ["--arch", "torchvision:squeezenet1_1", *data]
    for named in ([], ["--classifier", "classifier.1"]):
        proc = _post_train(user / "squeeze.pt", tmp_path / "no", *tv, *named, check=2, cli=pof_main)
        assert "classifier.2 (ReLU) sits between the 1x1 convolution classifier.1" in proc.stderr
        assert "Replace it by nn.Identity" in proc.stderr and "--classifier" not in proc.stderr
        assert not (tmp_path / "no").exists()
    mine = ["--arch", f"{user / 'heads.py'}:squeezenet_linear_head", *data]
    _post_train(user / "squeeze.pt", tmp_path / "yes", *mine, check=0)
    config = json.loads((tmp_path / "yes" / "config.json").read_text())
    assert "classifier = classifier.1 (1x1 Conv2d" in config["split"]


@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed-batch", "dynamic-batch"])
def test_an_export_program_measures_like_its_eager_model_and_refuses_post_training(
    user, tmp_path, dynamic, pof_main
):
    torch.manual_seed(0)
    mine = _module(user).build().eval()
    torch.save(mine.state_dict(), user / "mine.pt")
    shapes = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic else {}
    # traced with 5 inputs: 16 test and 32 train images leave a last chunk of 1 and 2 to pad
    torch.export.save(
        torch.export.export(mine, (torch.randn(5, 3, 32, 32),), **shapes), user / "p.pt2"
    )
    data = ["--dataset", f"npz:{user / 'images.npz'}"]
    eager = [user / "mine.pt", "--arch", f"{user / 'heads.py'}:build", *data]
    program = [user / "p.pt2", *data]

    def evaluate(args):
        return json.loads(run_cli("evaluate", *args, "--split", "both", "--json", check=0).stdout)

    def hessian(args):
        proc = _analysis("hessian", *args, "--json", "--quiet", "--out", tmp_path / "r")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    ours, theirs = evaluate(program), evaluate(eager)
    for split in ("train", "test"):
        assert ours[split]["acc"] == theirs[split]["acc"]
        assert ours[split]["loss"] == pytest.approx(theirs[split]["loss"], abs=1e-6)
    ours, theirs = hessian(program), hessian(eager)
    assert ours["top"]["eigenvalues"][0] == pytest.approx(theirs["top"]["eigenvalues"][0], rel=1e-4)
    assert ours["last_layer"] is None and "fixed graph" in ours["split"]
    layers = _analysis("layers", *program, "--probes", "2", "--quiet", "--out", tmp_path / "r")
    assert layers.returncode == 0 and "head.1" in layers.stdout, layers.stderr
    landscape = _analysis("landscape", *program, "--steps", "3", "--quiet", "--out", tmp_path / "r")
    assert landscape.returncode == 0, landscape.stderr
    # PoF trains the feature extractor; a fixed graph cannot be: refused, with what to save instead
    proc = _post_train(user / "p.pt2", tmp_path / "run", *data, check=2, cli=pof_main)
    assert "an exported program is a fixed graph" in proc.stderr
    assert "model.state_dict()" in proc.stderr and "--classifier" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_timm_state_dict_by_name_evaluates_measures_and_post_trains(tmp_path):
    import timm

    # the practitioner's resnet10t, trained on 8x8 grey digits: one input channel, ten classes
    mine = timm.create_model("resnet10t", pretrained=False, in_chans=1, num_classes=10).eval()
    torch.save(mine.state_dict(), tmp_path / "r10t.pt")
    args = [tmp_path / "r10t.pt", "--arch", "timm:resnet10t", "--dataset", "digits"]
    evaluated = run_cli("evaluate", *args, check=0).stdout
    assert "classifier = fc (Linear 512 -> 10)" in evaluated
    layers = _analysis(
        "layers", *args, "--samples", "32", "--probes", "2", "--traces-only",
        "--quiet", "--out", tmp_path / "r",
    )  # fmt: skip
    assert layers.returncode == 0 and "conv1.0" in layers.stdout, layers.stderr
    _post_train(tmp_path / "r10t.pt", tmp_path / "run", *args[1:], check=0)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "timm:resnet10t" and "fc" in config["split"]


def test_timm_names_are_checked_and_a_missing_timm_says_how_to_install_it(tmp_path, pof_main):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "w.pt")
    common = ["evaluate", tmp_path / "w.pt", "--dataset", "digits", "--arch"]
    proc = pof_main(*common, "timm:resnt10t", check=2)  # in this process (conftest)
    assert "timm has no model 'resnt10t'; did you mean resnet10t" in proc.stderr
    # a Python without timm: `import timm` fails, as it does where the extra is not installed
    code = "import sys; sys.modules['timm'] = None; import pof.cli as c; sys.exit(c.main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, common), "timm:resnet10t"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "pip install 'pof-flatness[timm]'" in proc.stderr, proc.stderr


def test_a_1x1_convolution_that_is_no_head_is_refused_without_a_misleading_reason():
    # the last 1x1 convolution sits inside the body: a 3x3 one makes the logits, so no split
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    with pytest.raises(ValueError, match=r"output is not 0\(features\)") as refused:
        split_model(model, example=torch.randn(2, 3, 8, 8))
    assert "sits between" not in str(refused.value)
    # with a ReLU after a real head, the reason names it
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"^1 \(ReLU\) sits between the 1x1 convolution 0 "):
        split_model(model, example=torch.randn(2, 3, 8, 8))


def test_a_conv_head_checkpoint_for_other_classes_is_refused_by_its_class_count(user):
    from pof.data.load import load_dataset
    from pof.models.formats import CheckpointError, ModelSource
    from pof.models.loading import load_checkpoint

    # ImageNet's 1000 classes, read off the 1x1 head's weights, against the user's 3
    torch.save(torchvision.models.squeezenet1_1().state_dict(), user / "imagenet.pt")
    data = load_dataset(f"npz:{user / 'images.npz'}")
    with pytest.raises(CheckpointError, match=r"returns \(2, 1000\) for a batch of 2"):
        load_checkpoint(user / "imagenet.pt", data, source=ModelSource("torchvision:squeezenet1_1"))
