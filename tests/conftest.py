import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import warnings
from pathlib import Path

import pytest

# pytest -n 2 (the README's command) runs two workers on the 2 cores: every process they start then
# runs torch on one thread. Left at torch's default, each of them spins two OpenMP threads against
# the other worker's, and CPU-bound tests take several times as long.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    """Caches and downloads go to a per-test folder, never the user's."""
    monkeypatch.setenv("POF_DATA", str(tmp_path / "data"))


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """The app's runs folder ($POF_RUNS) for this test alone."""
    root = tmp_path / "runs"
    monkeypatch.setenv("POF_RUNS", str(root))
    return root


def run_cli(*args, check=None, timeout=300, **kw):
    """Run `python -m pof ...` as a real subprocess from the repository root."""
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "pof", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check is not None:
        assert proc.returncode == check, (
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


# --- the command line in this process, as a fresh `python -m ...` would run it ------------------
#
# A subprocess pays for Python and the imports (torch: 1-3 s) before the first line of the command.
# A test of a refusal (bad option, file or folder) runs the same entry in the test's own process
# instead: `pof.signals.run_entry` around the command's `main`, stdout and stderr captured at the
# file descriptors (capfd), the exit code from its SystemExit. Each command and each way it exits
# keeps at least one test through a real subprocess (`run_cli`), and anything that may hang or
# exhaust memory when the code is wrong (a FIFO, /dev/zero) stays in a subprocess whose timeout
# fails it.

# the warning filters of a fresh interpreter (python -W / PYTHONWARNINGS unset): the command
# prints its warnings to stderr as it would there, instead of pytest recording (or raising) them
_FRESH_FILTERS = [
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
]


def _print_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _as_a_fresh_process(cwd, env):
    """Run the body as a new process would, and leave nothing behind: the signal handlers the entry
    installs, pof.signals' flags, cwd, environment, sys.path, modules imported from temporary
    folders (user code), the random generators, torch's threads and default dtype."""
    import random
    import signal

    import numpy as np
    import torch

    from pof import signals

    sigs = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not None]
    handlers = {s: signal.getsignal(s) for s in sigs}
    flags = (signals._term, signals._polled)
    old_cwd, old_env, old_path = os.getcwd(), dict(os.environ), list(sys.path)
    old_modules = set(sys.modules)
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())  # noqa: NPY002
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    signals._term = signals._polled = False  # a fresh process: no SIGTERM yet, nothing polls
    try:
        os.chdir(cwd)
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in _FRESH_FILTERS:
                warnings.filterwarnings(action, category=category, module=module, append=True)
            warnings.showwarning = _print_warning
            yield
    finally:
        os.chdir(old_cwd)
        if dict(os.environ) != old_env:
            os.environ.clear()
            os.environ.update(old_env)
        sys.path[:] = old_path
        tmp = tempfile.gettempdir()
        for name in set(sys.modules) - old_modules:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(tmp):
                del sys.modules[name]
        for s, h in handlers.items():
            signal.signal(s, h)
        signals._term, signals._polled = flags
        random.setstate(rng[0])
        np.random.set_state(rng[1])  # noqa: NPY002
        torch.set_rng_state(rng[2])
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


def _exit_code(code) -> int:
    """The process's exit status for sys.exit(code), as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main_in_process(
    capfd, module: str, *args, check=None, env=None, cwd=ROOT
) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` (pof or analysis) run by its own entry in this process: the
    CompletedProcess a subprocess would give (exit code, stdout, stderr); `check` as in run_cli."""
    from pof.signals import run_entry

    if module == "pof":
        from pof.cli import main
    elif module == "analysis":
        from analysis.cli import main
    else:
        raise ValueError(module)
    argv = [str(a) for a in args]
    capfd.readouterr()  # only the command's own output below
    with _as_a_fresh_process(cwd, env):
        try:
            run_entry(lambda: functools.partial(main, argv))  # always raises SystemExit
            code = 0
        except SystemExit as e:
            code = _exit_code(e.code)
        except Exception:  # uncaught: the interpreter prints the traceback and exits 1
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    out, err = capfd.readouterr()
    proc = subprocess.CompletedProcess([sys.executable, "-m", module, *argv], code, out, err)
    if check is not None:
        assert proc.returncode == check, (
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def pof_main(capfd):
    """`pof_main(*args)`: `python -m pof ARGS` in this process (main_in_process), as run_cli."""
    return functools.partial(main_in_process, capfd, "pof")


@pytest.fixture
def analysis_main(capfd):
    """`analysis_main(*args)`: `python -m analysis ARGS` in this process (main_in_process)."""
    return functools.partial(main_in_process, capfd, "analysis")


def wait_for_state(run, states=("done",), timeout=180):
    """Poll a run folder until its state is one of `states`; returns the status."""
    t0 = time.time()
    while run.status().get("state") not in states:
        assert time.time() - t0 < timeout, run.status()
        time.sleep(0.2)
    return run.status()


# --- the app in a real browser (tests/test_browser*.py) ------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`streamlit run app/main.py` on a free port with its own runs folder: (url, runs folder)."""
    yield from _serve(tmp_path)


@pytest.fixture
def shared_server(tmp_path):
    """The app as a teacher serves it to a class (POF_CLASSROOM=1), with small limits that a test
    reaches quickly: 50 KB of uploads and one job per session; nothing is allowed to run."""
    limits = {"POF_CLASSROOM": "1", "POF_UPLOAD_QUOTA_MB": "0.05", "POF_MAX_JOBS": "1"}
    yield from _serve(tmp_path, limits)


def _serve(tmp_path, extra_env=None):
    port = _free_port()
    env = {**os.environ, "POF_RUNS": str(tmp_path / "runs"), **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start")
    yield url, tmp_path / "runs"
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture
def page(tmp_path):
    """A page of headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (as .ci/run does)."
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        pg = browser.new_page(viewport={"width": 1300, "height": 1200})
        yield pg
        browser.close()


# --- markers: `-m "not slow and not browser"` is the fast subset ---------------------------------
#
# browser: the test starts the app's server (the `server` fixture) and drives it in Chromium.
# slow: the test, or a module fixture it needs, took 4 s or more when every test was measured on the
# 2-core machine while it was shared (load 5-9, so about 1.5 s idle), module by module with
# `python -m pytest -q --durations=0 tests/MODULE.py` (2026-11-29). A new test that trains, runs
# the CLI, a job or a server belongs here; re-measure when the fast subset grows past a minute.
SLOW_FIXTURES = {  # module fixtures that train or measure
    "test_analysis_cli.py": {"ckpts"},  # pre-training runs through the CLI
    "test_app.py": {"finished_pof_run"},  # a PoF run and its whole analysis
    "test_app_faults.py": {"good_runs"},  # pre-training and post-training runs
    "test_crosscheck.py": {"mlp"},  # a pre-training, then two `analysis hessian` runs (25 s)
    "test_curvature_app.py": {"tracked"},  # a tracked pre-training through the CLI (10-20 s)
    "test_layers.py": {"tiny", "two_checkpoints"},  # an exact Hessian (56 s); two pre-trainings
    "test_learn.py": {"sharp"},  # trains the Learn page's sharp network (17 s)
    "test_post_train.py": {"ckpts"},  # pre-training runs through the CLI
}
SLOW_TESTS = {
    "test_layers.py": {  # the CLI and a comparison job on the moons model: 22-25 s each
        "test_the_command_says_how_long_before_starting_and_the_count_falls_in_its_range",
        "test_the_apps_per_layer_job_states_its_measured_estimate_as_its_first_line",
    },
    "test_crosscheck.py": {  # PyHessian and this project's estimates, and an exact Hessian: 4-7 s
        "test_pyhessian_leaves_the_model_as_it_found_it_and_agrees_despite_stale_gradients",
    },
    "test_csv_split.py": {  # two pre-trainings and an evaluation through the CLI: 45 s
        "test_the_split_is_stated_recorded_and_reused_by_the_commands",
        "test_the_inspect_card_states_the_drawn_split",  # a pre-training, then the page: 10 s
    },
    "test_app.py": {
        "test_pretrain_start_creates_a_run_folder_and_a_background_job",  # 28 s
        "test_bad_combinations_and_occupied_names_are_refused",  # 22 s
        "test_start_post_trains_the_default_model_in_a_background_job",  # 17 s
        "test_runs_page_shows_a_queued_job_waiting_for_the_running_one",  # 8 s
        "test_compare_page_starts_one_background_job_per_missing_analysis",  # 7 s
        "test_a_run_trained_on_an_image_folder_is_offered_that_folder_without_a_download_warning",
        "test_default_page_offers_the_bundled_digits_model_with_its_card_and_the_paper_defaults",
    },
    "test_app_faults.py": {
        "test_a_crafted_run_in_the_url_is_refused_and_nothing_outside_is_read_or_written",  # 42 s
        "test_a_dead_and_a_broken_run_do_not_hold_up_a_job_started_from_the_app",  # 21 s
        "test_a_restarted_app_keeps_showing_a_running_job_live",  # 9 s
    },
    "test_curvature_app.py": {  # 16 s: a tracked post-training job started from the page
        "test_track_curvature_on_the_post_train_form_starts_a_tracked_job"
    },
    "test_catalogue.py": {"test_offline_bundled_models_reach_their_recorded_test_accuracy"},  # 7 s
    "test_inspect_app.py": {
        "test_two_bundled_checkpoints_side_by_side_per_layer",  # 116 s
        "test_traces_only_for_a_large_model",  # 30 s
    },
    "test_cold_start.py": {  # 11 s: three fresh Python processes import torch
        "test_the_app_runs_torch_on_one_thread_once_imported_and_its_jobs_keep_theirs"
    },
    "test_foreign_models.py": {
        "test_a_torchvision_resnet18_state_dict",  # 14 s
        "test_cli_import_then_every_command_takes_it_as_it_is",  # 11 s
        "test_pretraining_on_a_csv_keeps_its_label_column_and_class_order",  # 7 s
        "test_alphabetical_class_order_meets_a_foreign_checkpoint_loudly",  # 5 s
    },
    "test_faults_runs.py": {
        "test_runs_list_on_the_command_line_lists_every_run_however_broken",  # 25 s
        "test_two_processes_creating_one_run_at_the_same_instant_exactly_one_wins",  # 9 s each
        "test_no_file_content_crashes_or_hangs_a_reader",  # 8 s
        "test_a_command_that_fails_after_creating_its_folder_does_not_stay_queued",  # 7 s
        "test_a_job_the_app_queued_that_refuses_its_input_says_why_in_its_folder",  # 7 s
        "test_a_cancel_sent_while_a_resume_starts_is_kept_and_one_on_a_finished_run_is_not_written",
    },
    "test_hessian.py": {
        "test_slq_density_support_matches_extreme_eigenvalues_and_weights_sum_to_one",  # 38 s
        "test_trace_within_three_standard_errors_and_per_layer_blocks",  # 25 s
        "test_top_eigenvalues_match_exact_and_are_sorted",  # 7 s
    },
    "test_landscape.py": {
        "test_worst_case_sharpness_at_a_minimum_is_half_rho_squared_lambda_max",  # 17 s
        "test_landscape_origin_is_the_models_loss_and_the_model_is_restored_bit_for_bit",  # 12 s
        "test_average_case_sharpness_at_a_minimum_is_half_sigma_squared_trace",  # 7 s
        "test_a_stopped_landscape_continues_to_the_same_result",  # 4 s
    },
    "test_lastlayer.py": {"test_closed_form_equals_autograd_hessian"},  # 4.5 s
    "test_learn.py": {"test_curvature_matches_the_exact_hessian"},  # 12 s
    "test_models.py": {
        "test_every_model_is_classifier_of_features[wrn-28-10]",  # 6 s
        "test_every_model_is_classifier_of_features[resnet56]",  # 6 s
        "test_foreign_module_is_split_at_its_last_linear",  # 4 s
    },
    "test_pof_step.py": {"test_affine_line_search_picks_exactly_the_naive_eta"},  # 27 s each
    "test_runs.py": {"test_readers_never_see_a_torn_status_or_metrics_line"},  # 14 s
    "test_sam.py": {"test_one_sam_step_is_the_hand_computed_one"},  # 4.5 s
    "test_messages.py": {
        "test_post_train_page_points_a_state_dict_to_the_inspect_pages_fields",  # the app runs
        "test_a_job_refused_by_the_loader_is_reported_in_the_apps_words",  # a job: 11 s
    },
    "test_weights_key.py": {"test_cli_says_which_key_and_which_prefix_it_used"},  # CLI runs
}
SLOW_TESTS["test_classroom.py"] = {  # the CLI in subprocesses: 16-60 s under load
    "test_os_system_as_the_architecture_runs_nothing_in_either_mode",
    "test_own_code_runs_by_default_and_in_a_classroom_only_when_the_teacher_allows_it",
    "test_registry_and_torchvision_architectures_need_no_allow_list",  # builds a resnet18: 7 s
}
SLOW_MODULES = {
    "test_jobqueue.py",  # every test runs jobs in subprocesses: 4-17 s each
    # most of its 83 tests run the CLI (as a subprocess, or in process: conftest.main_in_process)
    "test_faults_input.py",
    # every test pre-trains through the CLI, or runs it repeatedly (not timed one by one)
    "test_train_cli.py",
    "test_learn_app.py",  # the Learn page trains its networks: 39 s for the first, 1-20 s after
    # conv heads, SqueezeNet, export programs, timm: the CLI in subprocesses, 5-110 s each
    "test_foreign_heads.py",
    "test_learn_store.py",  # trains and measures tiny networks: 0.2-13 s each on a busy machine
    "test_hostile.py",  # every test runs the CLI in subprocesses, several times: 10-60 s each
    "test_signals.py",  # trainings and analyses in subprocesses, stopped by SIGTERM: 10-70 s each
    "test_track.py",  # three post-trainings, then `analysis track` in subprocesses: 20-100 s each
}


def _slow(item) -> bool:
    module = item.path.name
    tests = SLOW_TESTS.get(module, set())
    return (
        module in SLOW_MODULES
        or item.name in tests
        or item.originalname in tests
        or bool(SLOW_FIXTURES.get(module, set()) & set(item.fixturenames))
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if {"server", "shared_server"} & set(item.fixturenames):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
        elif _slow(item):
            item.add_marker(pytest.mark.slow)
