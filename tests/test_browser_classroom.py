"""The app served to a class (POF_CLASSROOM=1), in a real browser: a student can upload a model and
inspect it, but cannot make the server run code (`os:system` and their own factory are refused, and
the marker file `os:system` would make never appears), read its files (no server paths offered),
fill its disk (an upload over the session's quota is refused) or queue without end (a second job
is refused)."""

import re

import torch
from test_browser import _shot

from pof.models.build import build

OWN_NET = (
    "import torch.nn as nn\n\ndef build(num_classes=10):\n    return nn.Linear(64, num_classes)\n"
)


def test_a_student_inspects_an_upload_and_meets_each_refusal(shared_server, page, tmp_path):
    url, runs = shared_server
    mlp = build("mlp", input_shape=(1, 8, 8), num_classes=10)  # digits: 8x8 images, 10 classes
    torch.save(mlp.state_dict(), tmp_path / "my_mlp.pt")  # 36 KB: within the 50 KB quota
    torch.save({"w": torch.zeros(5000)}, tmp_path / "big.pt")  # 20 KB more: over it
    (tmp_path / "ownnet.py").write_text(OWN_NET)
    marker = tmp_path / "MARKER"

    page.goto(url + "/inspect")
    page.get_by_text("Inspect checkpoints").wait_for(timeout=60_000)
    page.get_by_text("Shared with a class").wait_for(timeout=30_000)
    page.get_by_text("No model code of your own runs here").wait_for()
    assert page.get_by_text("a path on this server").count() == 0  # no server paths

    page.get_by_text("an upload").first.click()
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "my_mlp.pt"))
    page.get_by_text("carries no metadata of this project").wait_for(timeout=30_000)
    arch = page.get_by_role("textbox", name="Architecture")
    arch.fill("mlp")
    arch.press("Enter")
    page.wait_for_function(  # its card: the upload, inspected
        "document.querySelectorAll('[data-testid=\"stMetricValue\"]').length >= 3", timeout=60_000
    )
    _shot(page, tmp_path, "classroom-1-card")

    # a second job is over this session's cap of one: refused before any job starts
    analyses = page.locator('[data-testid="stMultiSelect"] input')
    analyses.click()  # the Analyses list: add the Hessian spectra by typing, as a user may
    analyses.press_sequentially("Hessian")
    page.get_by_role("option", name="Hessian spectra").wait_for(timeout=30_000)
    analyses.press("Enter")
    page.keyboard.press("Escape")  # close the list
    _shot(page, tmp_path, "classroom-1b-two")
    page.get_by_role("button", name="Compute 2 analyses").click()
    page.get_by_text(re.compile(r"may have 1 at once")).wait_for(timeout=30_000)
    assert not (runs / "analysis").exists() or not any((runs / "analysis").rglob("status.json"))

    page.get_by_role("textbox", name="Its arguments").fill(f"command=touch {marker}")
    arch.fill("os:system")
    arch.press("Enter")
    page.get_by_text(
        "Architecture: 'os:system' names a function of Python's own 'os' module"
    ).wait_for(timeout=30_000)
    arch.fill(f"{tmp_path / 'ownnet.py'}:build")
    arch.press("Enter")
    page.get_by_text(re.compile("Architecture: This app is shared with a class")).wait_for(
        timeout=30_000
    )
    assert page.get_by_text("runs your own code").count() == 0  # no promise that it will
    _shot(page, tmp_path, "classroom-2-refused")
    assert not marker.exists()

    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "big.pt"))
    page.get_by_text(re.compile(r"over the 0.05 MB each student may keep here")).wait_for(
        timeout=30_000
    )
    stored = [p for p in (runs / ".uploads").rglob("*.pt")]
    assert len(stored) == 1 and stored[0].stat().st_size == (tmp_path / "my_mlp.pt").stat().st_size
    assert stored[0].parent.parent == runs / ".uploads"  # in this session's own folder

    page.goto(url)  # Post-train: a bundled model or a run, never a file on the server
    page.get_by_text("Post-train a model with PoF").wait_for(timeout=60_000)
    page.get_by_text("my runs").first.wait_for()
    assert page.get_by_text("a checkpoint file").count() == 0
