import pytest
import torch
import torchvision
from torch import nn

from pof.models.networks import build_model, count_parameters
from pof.models.registry import ARCHS
from pof.models.split import split_model

SHAPES = {"mlp": (2,), "cnn-small": (1, 8, 8)}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_model_is_classifier_of_features(arch):
    shape = SHAPES.get(arch, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(arch, shape, 7).eval()
    x = torch.randn(2, *shape)
    split = split_model(model)
    assert split.how == "registry" and split.classifier.out_features == 7
    with torch.no_grad():
        out = model(x)
        feats = split.features(x)
    assert out.shape == (2, 7) and feats.shape == (2, split.classifier.in_features)
    assert torch.allclose(split.classifier(feats), out)
    assert "Linear" in split.describe()


@pytest.mark.parametrize(
    "arch,shape", [("cnn-small", (1, 28, 28)), ("cnn-small", (3, 32, 32)), ("mlp", (1, 8, 8))]
)
def test_small_models_take_other_input_sizes(arch, shape):
    assert build_model(arch, shape, 10)(torch.randn(3, *shape)).shape == (3, 10)


def test_parameter_counts_match_the_published_architectures():
    # ResNet-20 ~0.27M (He et al. 2016, option A), WRN-28-10 ~36.5M (Zagoruyko & Komodakis 2016)
    assert abs(count_parameters(build_model("resnet20", (3, 32, 32), 10)) - 0.27e6) < 0.01e6
    assert abs(count_parameters(build_model("wrn-28-10", (3, 32, 32), 10)) - 36.5e6) < 0.1e6
    assert abs(count_parameters(build_model("resnet56", (3, 32, 32), 10)) - 0.85e6) < 0.01e6
    assert 0.08e6 < count_parameters(build_model("cnn-small", (3, 32, 32), 10)) < 0.12e6


def test_wide_resnet_ends_with_bn_relu_and_pooling():
    feats = build_model("wrn-16-4", (3, 32, 32), 10).features
    kinds = [type(m) for m in list(feats)[-4:]]
    assert kinds == [nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten]


def test_image_models_refuse_2d_inputs():
    with pytest.raises(ValueError, match="use mlp"):
        build_model("resnet20", (2,), 2)
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_model("vgg", (3, 32, 32), 10)


def test_foreign_module_is_split_at_its_last_linear():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    split = split_model(model, example=x)
    assert split.classifier_name == "fc" and split.how == "last nn.Linear"
    with torch.no_grad():
        assert torch.allclose(split.classifier(split.features(x)), model(x), atol=1e-5)
    assert isinstance(model.fc, nn.Linear)  # the model is left as it was


def test_foreign_module_with_work_after_the_last_linear_is_refused():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(ValueError, match="something follows"):
        split_model(model, example=torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"neither an nn.Linear layer nor a 1x1 convolution"):
        split_model(nn.Sequential(nn.Conv2d(1, 1, 3)))
