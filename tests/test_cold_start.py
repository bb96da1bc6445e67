"""The app's cold start: naming architectures and reading model files needs no torch, and the app's
own process runs torch on one thread while the jobs it starts keep all of theirs."""

import ast
import os
import subprocess
import sys

from conftest import ROOT

# the pages a fresh server draws first: the default page and the page that lists the runs
FIRST_PAGES = ("app/views/posttrain.py", "app/views/runs.py")


def _python(code: str, **env) -> str:
    """stdout of `python -c code` in a fresh process (this one has torch imported), with torch's
    own thread default (the suite's workers set one thread for the processes they start)."""
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_naming_an_architecture_and_reading_a_model_files_kind_imports_no_torch():
    out = _python(
        "import sys\n"
        "from pathlib import Path\n"
        "from pof.models.registry import ARCHS, kind_of, runs_user_code, split_text\n"
        "from pof.models.formats import CheckpointError, LoadError, ModelSource, sniff\n"
        "assert kind_of('cnn-small') == 'registry' and not runs_user_code('resnet20')\n"
        "assert sniff(Path('assets/digits-cnn-small-sgd.safetensors')) == 'safetensors'\n"
        "print('torch' in sys.modules)"
    )
    assert out == "False"


def _top_level_imports(path: str) -> list[str]:
    """The modules a page imports when it loads (not those its functions import later)."""
    tree = ast.parse((ROOT / path).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module)
    return names


def test_the_first_pages_modules_import_no_torch():
    modules = sorted({m for page in FIRST_PAGES for m in _top_level_imports(page)})
    assert {"pof.models.catalogue", "pof.config", "pof.data.names", "pof.runs.run"} <= set(modules)
    out = _python(
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    assert out == "[]", f"importing {modules} imported torch"


def test_a_bundled_models_card_and_the_default_learning_rate_need_no_torch():
    out = _python(
        "import sys\n"
        "from pof.models.catalogue import DEFAULT_MODEL, bundled, bundled_card, verify\n"
        "from pof.config import PoFConfig, default_post_lr\n"
        "from pof.models.metadata import dataset_of, read_metadata\n"
        "entry = bundled()[DEFAULT_MODEL]\n"
        "verify(entry)\n"
        "card = bundled_card(entry)\n"
        "assert read_metadata(entry['path'])['arch'] == card['meta']['arch']\n"
        "assert dataset_of(entry['path']) == card['meta']['dataset']\n"
        "assert default_post_lr(card['meta'])[0] > 0 and PoFConfig().num_partitions == 16\n"
        "print('torch' in sys.modules)"
    )
    assert out == "False"


def test_a_first_visit_to_a_learn_chapter_reads_its_results_without_importing_torch(tmp_path):
    """Torch (1.6 s of a first visit) is imported by a Learn chapter only when a result must be
    computed, or, after the first view, by the background warm-up (5 s later). Chapter 3's part on
    the bundled digits models looks for the Inspect page's comparison (analysis.compare), which
    imports it: the one chapter that does, opened last here."""
    out = _python(
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "from app.learn.chapters import CHAPTERS\n"
        "for n in (1, 2, 4, 5, 6, 3):\n"
        "    at = AppTest.from_file('app/main.py', default_timeout=120).run()  # Post-train\n"
        "    at.switch_page(CHAPTERS[n - 1].page).run()\n"
        "    assert not at.exception, at.exception\n"
        "    print(n, len(at.get('plotly_chart')), 'torch' in sys.modules)\n",
        POF_RUNS=str(tmp_path / "runs"),
    )
    shown = [line.split() for line in out.splitlines()[-6:]]
    assert shown == [
        ["1", "1", "False"],
        ["2", "1", "False"],
        ["4", "2", "False"],
        ["5", "2", "False"],
        ["6", "1", "False"],
        ["3", "3", "True"],  # analysis.compare
    ], out
    assert not (tmp_path / "runs" / ".cache").exists()  # nothing computed: all of it shipped


def test_the_app_runs_torch_on_one_thread_once_imported_and_its_jobs_keep_theirs():
    default = _python("import torch; print(torch.get_num_threads())")
    out = _python(
        "import os, subprocess, sys\n"
        "from app.torch_threads import one_torch_thread\n"
        "one_torch_thread()\n"
        "assert 'torch' not in sys.modules  # nothing imported yet: set when a page imports it\n"
        "import torch\n"
        "probe = 'import torch; print(torch.get_num_threads())'\n"
        "job = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,\n"
        "                     check=True).stdout.strip()\n"
        "print(torch.get_num_threads(), job, os.environ.get('OMP_NUM_THREADS'))"
    )
    ours, job, omp = out.split()
    assert ours == "1" and omp == "None"  # nothing put in the environment the jobs inherit
    assert job == default  # a child process has torch's own default (2 on a 2-core machine)
