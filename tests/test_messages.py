"""The loader's messages in each interface's words: the command line names its flags and the path
given, the app its page's fields and the name the user uploaded the file under."""

import pytest
import torch
from torch import nn

from app.messages import human_size, say
from pof.data.load import load_dataset
from pof.models.formats import CheckpointError
from pof.models.loading import load_checkpoint


def _stored_upload(tmp_path):
    """A weights-only file stored as the app stores uploads: under a hashed name."""
    folder = tmp_path / ".uploads"
    folder.mkdir()
    path = folder / "651924405938f29a.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).state_dict(), path)
    return path


def test_weights_only_file_asks_for_the_architecture_in_each_interfaces_words(tmp_path):
    path = _stored_upload(tmp_path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, dataset=load_dataset("digits"))
    cli = str(e.value)
    assert "give its architecture with --arch" in cli and str(path) in cli
    app = say(e.value, names={str(path): "my.pt"})
    assert app.startswith("my.pt holds weights only")
    assert "the 'Architecture' field" in app
    assert "--" not in app and ".uploads" not in app and "\x02" not in app


def test_key_suggestion_names_the_rename_field(tmp_path):
    """Keys under another name: the CLI suggests --key-map, the app the value in its field."""
    factory = tmp_path / "net.py"
    factory.write_text(
        "from collections import OrderedDict\n"
        "import torch.nn as nn\n"
        "def build(num_classes=10):\n"
        "    body = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc1=nn.Linear(64, 32)))\n"
        "    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(32, num_classes)))\n"
    )
    state = {
        "enc.fc1.weight": torch.zeros(32, 64),
        "enc.fc1.bias": torch.zeros(32),
        "head.weight": torch.zeros(10, 32),
        "head.bias": torch.zeros(10),
    }
    path = tmp_path / "net.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, dataset=load_dataset("digits"), arch=f"{factory}:build")
    assert "--key-map enc.=body." in str(e.value)
    app = say(e.value, names={str(path): "net.pt"})
    assert "enc.=body. in the 'Rename keys' field" in app and "--" not in app


def test_sizes_read_in_human_units():
    assert human_size(11_800) == "11.8 KB"
    assert human_size(3_200_000) == "3.2 MB"
    assert human_size(512) == "512 bytes"


def test_post_train_page_points_a_state_dict_to_the_inspect_pages_fields(runs_root, tmp_path):
    """The Post-train page takes project checkpoints only: for a state dict it names where the
    app asks for an architecture, not the command line's flags."""
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(64, 10).state_dict(), path)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()
    at.radio[0].set_value("a checkpoint file").run()
    at.text_input[0].set_value(str(path)).run()
    error = at.error[0].value
    assert "without this project's metadata" in error
    assert "the 'Architecture' field of the Inspect page" in error
    assert "'Save as a project checkpoint'" in error and "--" not in error


def test_a_job_refused_by_the_loader_is_reported_in_the_apps_words(runs_root, tmp_path):
    """A background job (here a post-training of an upload that holds weights only) fails in the
    command line's words; the app reads the marks it kept and words them as its own."""
    from conftest import wait_for_state

    from app.jobs import start_job
    from app.messages import job_error
    from app.uploads import save_upload
    from pof.runs.run import Run

    stored = _stored_upload(tmp_path)
    upload = save_upload("my.pt", stored.read_bytes())
    run_dir = runs_root / "refused"
    start_job(run_dir, ["-m", "pof", "post-train", str(upload), "--dataset", "digits",
                        "--out", str(run_dir), "--quiet"], runs_root)  # fmt: skip
    status = wait_for_state(Run(run_dir), ("failed",), timeout=120)
    assert "give its architecture with --arch" in status["error"]
    shown = job_error(status, fields={"dataset": "Dataset"}, page="job")  # as the Runs pages do
    assert shown.startswith("my.pt holds weights only")
    assert "the 'Architecture' field of the Inspect page" in shown
    assert "--" not in shown and ".uploads" not in shown
