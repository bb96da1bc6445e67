"""The card of an uploaded model in a real browser: a weights-only `my.pt` is refused in the page's
own words (its Architecture field, the file's own name), its size reads in KB; once named, the card
shows the accuracy measured on the data, the whole architecture, the normalization in force, the
unusual key and the stripped `module.` prefix the weights were read with, and warns when a wrong
normalization puts the model near chance."""

import re

import torch
from test_browser import _shot

from pof.data.load import load_dataset
from pof.models.loading import load_checkpoint
from pof.training.evaluation import accuracy_within

FACTORY = (
    "from pof.models.networks import build_model\n\n\n"
    "def build(num_classes=10):\n"
    '    return build_model("cnn-small", (1, 8, 8), num_classes, width=32)\n'
)


def _card_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_an_uploaded_checkpoint_dict_gets_a_card_in_the_pages_words(server, page, tmp_path):
    url, _ = server
    model, _ = load_checkpoint("assets/digits-cnn-small-sgd.safetensors")
    # saved as a DataParallel training script would: prefixed keys under an unusual key
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    upload = tmp_path / "my.pt"
    torch.save({"epoch": 3, "model_state": state, "optim_state": {"lr": 0.1}}, upload)
    factory = tmp_path / "a_rather_long_module_name_for_my_digits_network.py"
    factory.write_text(FACTORY)
    digits = load_dataset("digits")
    expected = accuracy_within(model, digits.x_test, digits.y_test, digits.mean, digits.std)
    assert expected["n"] == expected["total"]  # the whole test set, as the page measures it

    page.goto(url + "/inspect")
    page.get_by_text("Inspect checkpoints").wait_for(timeout=60_000)
    page.get_by_text("an upload").first.click()
    page.locator("input[type=file]").first.set_input_files(str(upload))
    refusal = page.get_by_text("holds weights only")
    refusal.wait_for(timeout=30_000)
    message = refusal.inner_text()
    assert message.startswith("This checkpoint cannot be used: my.pt holds weights only")
    assert "the 'Architecture' field" in message
    assert "--" not in message and ".uploads" not in message
    size = upload.stat().st_size
    assert 1_000 <= size < 1_000_000
    # the choice of upload, by its own name and size (the select box holds it as its value)
    assert f"my.pt ({size / 1e3:.1f} KB, uploaded" in page.content()
    _shot(page, tmp_path, "card-1-refused")

    arch = f"{factory}:build"
    page.get_by_role("textbox", name="Architecture").fill(arch)
    page.get_by_role("textbox", name="Architecture").press("Enter")
    page.get_by_text("Normalization:").wait_for(timeout=60_000)
    page.get_by_text(f"{expected['acc']:.1%}").wait_for()  # the metrics draw after the text
    _shot(page, tmp_path, "card-2-measured")
    text = _card_text(page)
    assert f"Architecture: {arch}" in text  # whole, not cut
    assert f"{expected['acc']:.1%}" in text  # the engine's own number on the same data
    assert f"measured on all {expected['total']} test examples" in text
    assert "Normalization: mean 0.3053; std 0.3758, the data's default (computed from" in text
    keys = "Loading: read the weights under the key 'model_state'; stripped the prefix 'module.'"
    assert keys in text
    assert "near chance" not in text

    # the inputs left as they are: the model sees data it was never trained on
    page.get_by_role("textbox", name="Normalization").fill("none")
    page.get_by_role("textbox", name="Normalization").press("Enter")
    page.get_by_text("near chance").wait_for(timeout=60_000)
    text = _card_text(page)
    assert "Normalization: none (mean 0, std 1: inputs as they are read), stated by you" in text
    warning = page.get_by_text("near chance").inner_text()
    assert "the 'Normalization' field" in warning and "the 'Class order' field" in warning
    assert "--" not in warning
    wrong = accuracy_within(model, digits.x_test, digits.y_test, [0.0], [1.0])
    assert re.search(rf"Accuracy {wrong['acc']:.1%} on digits is near chance", warning)
    _shot(page, tmp_path, "card-3-near-chance")
