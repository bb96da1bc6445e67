"""Whose code a model may run (pof.models.registry), through the real CLI: an architecture spec that
names a function of Python's own library is refused before anything is imported or called, in
either mode; shared (classroom) mode runs model code only from the teacher's allow-list. A marker
file that a successful `os:system` call would create is the proof."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pof.models.build import build
from pof.models.registry import ArchError, CodeRefused, check_code

ROOT = Path(__file__).resolve().parents[1]

OWN_NET = textwrap.dedent("""
    import torch.nn as nn

    def build(num_classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, num_classes))
""")


def _cli(tmp_path, *args, classroom=False, allowed=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POF_")}
    env["POF_RUNS"] = str(tmp_path / "runs")
    if classroom:
        env.update(POF_CLASSROOM="1", POF_ALLOWED_CODE=allowed)
    return subprocess.run(
        [sys.executable, "-m", "pof", *map(str, args)],
        cwd=tmp_path,  # a relative file.py:fn spec is found from here, as a user's shell would
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def weights(tmp_path):
    """A state dict of the user's own network (digits: 8x8 images, 10 classes), and its code."""
    (tmp_path / "ownnet.py").write_text(OWN_NET)
    ns: dict = {}
    exec(OWN_NET, ns)
    torch.save(ns["build"]().state_dict(), tmp_path / "own.pt")
    return tmp_path / "own.pt"


@pytest.mark.parametrize("classroom", [False, True])
def test_os_system_as_the_architecture_runs_nothing_in_either_mode(tmp_path, weights, classroom):
    marker = tmp_path / "MARKER"
    proc = _cli(
        tmp_path,
        "evaluate",
        weights,
        "--dataset",
        "digits",
        "--arch",
        "os:system",
        "--arch-arg",
        f"command=touch {marker}",
        classroom=classroom,
    )
    assert proc.returncode == 2, proc.stderr
    assert not marker.exists()
    assert "Traceback" not in proc.stderr
    assert "names a function of Python's own 'os' module" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "spec", ["subprocess:call", "builtins:exec", "os.path:join", "shutil:rmtree", "sys:exit"]
)
def test_every_module_of_pythons_own_library_is_refused_before_it_is_imported(tmp_path, spec):
    with pytest.raises(CodeRefused, match=f"Python's own '{spec.split(':')[0].split('.')[0]}'"):
        build(spec, {"command": f"touch {tmp_path / 'MARKER'}"}, num_classes=2)
    assert not (tmp_path / "MARKER").exists()


def test_own_code_runs_by_default_and_in_a_classroom_only_when_the_teacher_allows_it(
    tmp_path, weights
):
    evaluate = ("evaluate", weights, "--dataset", "digits", "--arch", "ownnet.py:build")
    ok = _cli(tmp_path, *evaluate)
    assert ok.returncode == 0, ok.stderr

    refused = _cli(tmp_path, *evaluate, classroom=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "shared with a class" in refused.stderr and "nothing is allowed" in refused.stderr

    # the teacher's list names the file by its absolute path; the student's relative spelling of
    # the same file is the same spec
    allowed = f"{tmp_path / 'ownnet.py'}:build"
    again = _cli(tmp_path, *evaluate, classroom=True, allowed=allowed)
    assert again.returncode == 0, again.stderr


def test_an_allowed_file_allows_only_the_function_named(tmp_path, monkeypatch):
    (tmp_path / "ownnet.py").write_text(OWN_NET)
    monkeypatch.setenv("POF_CLASSROOM", "1")
    monkeypatch.setenv(
        "POF_ALLOWED_CODE", f"torchvision.models:resnet18, {tmp_path}/ownnet.py:build"
    )
    monkeypatch.chdir(tmp_path)
    check_code("ownnet.py:build")
    check_code("torchvision.models:resnet18")
    with pytest.raises(CodeRefused, match="is not among it"):
        check_code("ownnet.py:nn")


def test_registry_and_torchvision_architectures_need_no_allow_list(monkeypatch):
    monkeypatch.setenv("POF_CLASSROOM", "1")
    monkeypatch.delenv("POF_ALLOWED_CODE", raising=False)
    assert build("cnn-small", input_shape=(1, 8, 8), num_classes=10)
    assert build("torchvision:resnet18", num_classes=3)
    with pytest.raises(CodeRefused, match="shared with a class"):
        build("export:/tmp/model.pt2")  # a program is code too


def test_the_refusal_comes_before_the_file_is_read(tmp_path, monkeypatch):
    """A factory file that would leave a marker when imported is never imported."""
    marker = tmp_path / "MARKER"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(): pass\n")
    monkeypatch.setenv("POF_CLASSROOM", "1")
    with pytest.raises(ArchError):
        check_code(f"{tmp_path / 'evil.py'}:build")
    with pytest.raises(ArchError):
        build(f"{tmp_path / 'evil.py'}:build")
    assert not marker.exists()


@pytest.mark.parametrize("value", ["0", "-1", "lots", "nan", "inf"])
def test_a_wrong_limit_is_named_with_what_to_do(monkeypatch, value):
    from app.classroom import limits

    monkeypatch.setenv("POF_MAX_JOBS", value)
    with pytest.raises(ValueError, match=f"POF_MAX_JOBS={value!r} is not a positive number; unset"):
        limits()
    monkeypatch.delenv("POF_MAX_JOBS")
    monkeypatch.setenv("POF_UPLOAD_QUOTA_MB", "2.5")
    assert limits().upload_quota_mb == 2.5 and limits().max_jobs == 5


def test_a_fifo_as_an_uploads_note_does_not_hang_the_list(tmp_path, monkeypatch):
    """The list reads each upload's note: a FIFO put in its place (by anyone with the server's
    folder) is refused by its type, and the upload is listed by its stored name."""
    from app.uploads import list_uploads, save_upload

    monkeypatch.setenv("POF_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("POF_CLASSROOM", raising=False)
    stored = save_upload("my.pt", b"0123456789")
    note = stored.with_name(stored.name + ".json")
    note.unlink()
    os.mkfifo(note)
    [(path, shown)] = list_uploads()  # returns: a reader of the FIFO would wait forever
    assert path == stored and shown["name"] == stored.name and shown["bytes"] == 10


def test_in_a_shared_app_a_session_cancels_only_its_own_jobs(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    def page():
        import os
        from pathlib import Path

        import streamlit as st

        from app.classroom import may_cancel, note_job

        mine, other = Path(os.environ["MINE"]), Path(os.environ["OTHER"])
        note_job(mine)
        st.write(f"mine={may_cancel(mine)} relative={may_cancel(os.path.relpath(mine))}")
        st.write(f"other={may_cancel(other)}")

    monkeypatch.setenv("MINE", str(tmp_path / "runs" / "a"))
    monkeypatch.setenv("OTHER", str(tmp_path / "runs" / "b"))
    monkeypatch.setenv("POF_CLASSROOM", "1")
    at = AppTest.from_function(page).run()
    assert [m.value for m in at.markdown] == ["mine=True relative=True", "other=False"]
    monkeypatch.delenv("POF_CLASSROOM")
    at = AppTest.from_function(page).run()
    assert [m.value for m in at.markdown] == ["mine=True relative=True", "other=True"]
