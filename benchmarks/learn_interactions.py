"""How fast the Learn chapters answer in a real browser: a new user's first visit, each chapter
reached from the one before, and, chapter by chapter, the time from moving a slider to that
chapter's chart showing the new result, idle and while a background job runs.

    python benchmarks/learn_interactions.py [--repeats 5] [--cold-repeats 3] [--read-seconds 10]
                                            [--skip-job] [--job-epochs 100000]
                                            [--server-omp-threads N]

Everything runs against `streamlit run app/main.py` on a free port, in headless Chromium, in two
phases (idle; while a job runs):
  1. first visits: --cold-repeats times, a FRESH SERVER with a fresh, empty runs folder (POF_RUNS)
     and a fresh browser, as a new user has: time from navigating to /learn to chapter 1 fully drawn
     (its header, its chart holding data, the script run finished); and, each on a server and
     browser of its own, the README's way in: the start page (Post-train) drawn, then the time from
     clicking the sidebar's first Learn chapter to it drawn. For the first, the server's CPU
     seconds and whether it had loaded torch by then (libtorch mapped in its process: it needs none
     to draw what is shipped). The chapters' results come from what the repository ships
     (assets/learn, analysis.learn_store); the entries it had to compute instead (written to
     RUNS/.cache/learn) are counted and reported: 0 when the shipped set is current.
  2. on the last of those servers, chapter after chapter as a reader goes: wait --read-seconds (the
     reader reads; the page's background warm-up, 5 s after a first view, imports torch then),
     press the chapter's slider --repeats times (the pairs of tests/test_browser_learn.py: focus,
     an arrow key, time from the key press to the chapter's chart showing different data, Plotly's
     own `data`, `layout.shapes` and annotations; the next press waits until the run has
     finished), then click "Next" and time until the next chapter is drawn.
The job (skipped with --skip-job): `python -m pof pretrain --model cnn-small --dataset digits
--epochs <--job-epochs> --out <tmp>/busy --quiet` in its own process group (Nesterov SGD on both
cores; killed at the end and checked to be still running then), started 5 s before the phase.

Not flattering the numbers with Streamlit's cache: the page caches every result per argument in
memory (st.cache_data, analysis.learn's lru_cache), so moving a slider back to a value it had is
instant; each server starts with empty memory caches, and each slider moves one step at a time
from its default, so every press asks for a value this server has not shown. What it may read
from disk is what a user's would: the shipped results (assets/make_learn_cache.py walks chapters
1, 2, 3 (recipe A's batch), 5 and 6 through every slider value; chapter 4's γ is computed). The
slider with the least room (chapter 3's batch size: 100 -> 64 -> 32 -> 16 -> 8 -> 4; chapter 5's
α: 5 -> 2 -> 1 -> 0.5 -> 0.2 -> 0.1) allows exactly 5 new values; with more --repeats the slider
walks back through values it already showed (reported separately as "cached").
Targets (issue 19): first visit < 3 s and every slider < 1 s on an idle machine. Each time is
given as median [min-max] over the repeats; `uptime`'s load average is printed before and after.

--server-omp-threads N starts the servers with OMP_NUM_THREADS=N (the app itself sets torch to one
thread when a page first imports torch, app/torch_threads.py, which takes precedence).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# from this script's folder (sys.path[0] when it is run)
from app_render import CHARTS_JS, CHROMIUM, cpu_seconds, free_port, torch_loaded

ROOT = Path(__file__).resolve().parents[1]

# The chapters, their sliders and the charts watched. tests/test_browser_learn.py holds the same:
# a deliberate copy, as benchmarks and tests do not import each other.
# chapter -> (its address, the slider moved, the figure that must change, its number of figures)
CHAPTERS = {
    "1. What flatness is": ("/learn", "s1-width", "s1-fig", 1),
    "2. Why it might matter": ("/learn-why-it-matters", "s2-shift", "s2-fig", 1),
    "3. What makes minima flat or sharp": ("/learn-recipes", "s3-a-batch", "s3-bars", 3),
    "4. What PoF does, step by step": ("/learn-pof", "s4-gamma", "s4-search", 2),
    "5. The caveats": ("/learn-caveats", "s5-alpha", "s5-bars", 2),
    "6. The edge of stability": ("/learn-edge-of-stability", "s6-lr", "s6-fig", 1),
}
SHOWN = (
    "e && e.data ? JSON.stringify([e.data.map(t => [t.x, t.y, t.z]), "
    "(e.layout.shapes || []).map(s => [s.x0, s.y0]), "
    "(e.layout.annotations || []).map(a => a.text)]) : null"
)
FIGURE_JS = (
    "key => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
    f" return {SHOWN}; }}"
)
CHANGED_JS = (
    "([key, old]) => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
    f" const now = {SHOWN}; return now !== null && now !== old; }}"
)
HOLDS_JS = (
    "key => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
    " return !!(e && e.data && e.data.length); }"
)
IDLE_JS = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
SLIDER_JS = (
    "key => { const i = document.querySelector(`.st-key-${key} input[type=range]`);"
    " return [+i.value, +i.min, +i.max, +i.step, i.getAttribute('aria-valuetext')]; }"
)
TIMEOUT_MS = 600_000


def start_server(runs: Path, omp_threads: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "POF_RUNS": str(runs)}
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return server, f"http://localhost:{port}"


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def wait_healthy(url: str) -> float:
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return time.perf_counter()
        except OSError:
            time.sleep(0.05)


def drawn(page, header: str, figures: int, key: str) -> None:
    """Until the chapter's header shows, its own chart `key` holds data, exactly its number of
    charts is drawn (the chapter before has gone) and its script run has finished."""
    page.get_by_role("heading", name=header).wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(HOLDS_JS, arg=key, timeout=TIMEOUT_MS)
    page.wait_for_function(f"{CHARTS_JS} === {figures}", timeout=TIMEOUT_MS)
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)


def cold_load(page, url: str) -> float:
    """Navigation to /learn -> chapter 1 drawn."""
    (header, (path, _, fig, figures)), *_ = CHAPTERS.items()
    start = time.perf_counter()
    page.goto(url + path)
    drawn(page, header, figures, fig)
    return time.perf_counter() - start


def from_start_page(page, url: str) -> float:
    """The README's way in: the app's start page (Post-train) drawn, then its sidebar's first Learn
    chapter clicked -> chapter 1 drawn."""
    (header, (_, _, fig, figures)), *_ = CHAPTERS.items()
    page.goto(url)
    page.get_by_role("button", name="Start").wait_for(timeout=TIMEOUT_MS)  # the form's last widget
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)
    start = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=header).click()
    drawn(page, header, figures, fig)
    return time.perf_counter() - start


def choose(pos: int, last: int, seen: list[int]) -> tuple[str, bool]:
    """The arrow key for a slider at position pos of 0..last that has shown positions
    seen[0]..seen[1] (always one interval: it moves one step at a time): a new value if a neighbour
    is one, else a step towards values not yet shown (cached), else any step (cached)."""
    if pos > 0 and pos - 1 < seen[0]:
        return "ArrowLeft", False
    if pos < last and pos + 1 > seen[1]:
        return "ArrowRight", False
    return ("ArrowLeft" if (seen[0] > 0 or seen[1] == last) and pos > 0 else "ArrowRight"), True


def press(page, slider: str, fig: str, seen: list[int]) -> tuple[float, bool, str]:
    """One arrow key on the slider, timed until the figure shows other data. seen = [lowest,
    highest] slider position this server has computed; returns (seconds, cached, the value moved
    to)."""
    value, lo, hi, step, _ = page.evaluate(SLIDER_JS, slider)
    pos, last = round((value - lo) / step), round((hi - lo) / step)
    key, cached = choose(pos, last, seen)
    target = pos - 1 if key == "ArrowLeft" else pos + 1
    page.locator(f".st-key-{slider}").scroll_into_view_if_needed()
    page.locator(f".st-key-{slider} input[type=range]").first.focus()
    before = page.evaluate(FIGURE_JS, fig)
    t0 = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function(CHANGED_JS, arg=[fig, before], timeout=TIMEOUT_MS)
    elapsed = time.perf_counter() - t0
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)  # the fragment's run has finished
    value, *_, text = page.evaluate(SLIDER_JS, slider)
    if round((value - lo) / step) != target:
        raise RuntimeError(f"{slider}: expected position {target} after {key}, got value {value}")
    seen[0], seen[1] = min(seen[0], target), max(seen[1], target)
    return elapsed, cached, text


@contextlib.contextmanager
def fresh(pw, runs: Path, a):
    """A fresh server on an empty runs folder and a fresh browser's page: (server, url, page)."""
    runs.mkdir()
    server, url = start_server(runs, a.server_omp_threads)
    browser = None
    try:
        wait_healthy(url)
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield server, url, browser.new_page(viewport={"width": 1300, "height": 1200})
    finally:
        if browser:
            browser.close()
        stop(server)


def phase(pw, tmp: Path, a, label: str) -> dict:
    """--cold-repeats first visits, each on a fresh server and runs folder, then the chapters in
    turn on the last of them."""
    colds, cpus, computed, torch, starts = [], [], [], [], []
    name = label.replace(" ", "-")
    for i in range(a.cold_repeats):
        # the way in from the start page, on a fresh server and browser of its own
        with fresh(pw, tmp / f"runs-{name}-start-{i}", a) as (_, url, page):
            starts.append(from_start_page(page, url))
        print(
            f"[{label}] first visit {i + 1} from the start page: sidebar click -> chapter 1 "
            f"drawn {starts[-1]:.2f} s",
            flush=True,
        )
    for i in range(a.cold_repeats):
        runs = tmp / f"runs-{name}-{i}"
        with fresh(pw, runs, a) as (server, url, page):
            cpu0 = cpu_seconds(server.pid)
            colds.append(cold_load(page, url))
            cpus.append(cpu_seconds(server.pid) - cpu0)
            torch.append(torch_loaded(server.pid))
            computed.append(len(list(runs.glob(".cache/learn/*.json"))))
            print(
                f"[{label}] first visit {i + 1}: navigation -> /learn drawn {colds[-1]:.2f} s "
                f"(server CPU {cpus[-1]:.2f} s, torch {'loaded' if torch[-1] else 'not loaded'}),"
                f" {computed[-1]} results computed",
                flush=True,
            )
            if i == a.cold_repeats - 1:
                times = chapters(page, a, label, server.pid)
    return {
        "cold": colds,
        "start": starts,
        "cpu": cpus,
        "computed": computed,
        "torch": torch,
        "times": times,
    }


def chapters(page, a, label: str, pid: int) -> dict:
    """Each chapter in turn: read, move its slider --repeats times, then "Next" to the following
    one, timed until it is drawn."""
    times = {h: {"new": [], "cached": [], "cpu": [], "reached": []} for h in CHAPTERS}
    headers = list(CHAPTERS)
    for n, (header, (_, slider, fig, _)) in enumerate(CHAPTERS.items()):
        time.sleep(a.read_seconds)
        value, lo, _, step, _ = page.evaluate(SLIDER_JS, slider)
        seen = [round((value - lo) / step)] * 2
        for rep in range(a.repeats):
            cpu0 = cpu_seconds(pid)
            elapsed, cached, text = press(page, slider, fig, seen)
            cpu = cpu_seconds(pid) - cpu0  # the server's work, until its run finished
            times[header]["cached" if cached else "new"].append(elapsed)
            if not cached:
                times[header]["cpu"].append(cpu)
            print(
                f"[{label}] {header}, press {rep + 1}: {slider} -> {text}"
                f"{' (cached)' if cached else ''}: {elapsed:.2f} s (server CPU {cpu:.2f} s)",
                flush=True,
            )
        if n + 1 < len(headers):
            following = headers[n + 1]
            t0 = time.perf_counter()
            page.get_by_role("link", name=f"Next: {following}").click()
            drawn(page, following, CHAPTERS[following][3], CHAPTERS[following][2])
            times[following]["reached"].append(time.perf_counter() - t0)
            print(f"[{label}] Next -> {following}: {time.perf_counter() - t0:.2f} s", flush=True)
    assert not page.locator("[data-testid=stException]").count(), "the page shows an exception"
    return times


def spread(xs: list[float]) -> str:
    """median [min-max] in seconds."""
    if not xs:
        return "-"
    return f"{statistics.median(xs):.2f} s [{min(xs):.2f}–{max(xs):.2f}]"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5, help="presses of each slider")
    p.add_argument("--cold-repeats", type=int, default=3, help="first visits, one server each")
    p.add_argument(
        "--read-seconds",
        type=float,
        default=10.0,
        help="seconds a reader spends on a chapter before moving its slider",
    )
    p.add_argument("--skip-job", action="store_true", help="the idle phase only")
    p.add_argument(
        "--job-epochs",
        type=int,
        default=100_000,
        help="epochs of the background pre-training (killed at the end; must outlast the phase)",
    )
    p.add_argument(
        "--server-omp-threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the app's servers only (default: unset, torch's own choice)",
    )
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pof-learn-bench-"))
    job, busy, job_share = None, None, None
    load = [os.getloadavg()]
    try:
        with sync_playwright() as pw:
            print(f"load average before: {' '.join(f'{x:.2f}' for x in load[0])}", flush=True)
            idle = phase(pw, tmp, a, "idle")
            if not a.skip_job:
                job = start_job(tmp / "busy", a.job_epochs)
                time.sleep(5)
                job_cpu0, t0 = cpu_seconds(job.pid), time.perf_counter()
                busy = phase(pw, tmp, a, "job running")
                if job.poll() is not None:
                    raise RuntimeError(
                        f"the background job ended early (exit {job.returncode}): raise "
                        "--job-epochs"
                    )
                job_share = (cpu_seconds(job.pid) - job_cpu0) / (time.perf_counter() - t0)
    finally:
        stop(job)
        shutil.rmtree(tmp, ignore_errors=True)
    load.append(os.getloadavg())
    report(a, idle, busy, job_share, load)


def start_job(out: Path, epochs: int) -> subprocess.Popen:
    """A long pre-training that keeps both cores busy, in its own process group."""
    argv = ["-m", "pof", "pretrain", "--model", "cnn-small", "--dataset", "digits"]
    return subprocess.Popen(
        [sys.executable, *argv, "--epochs", str(epochs), "--out", str(out), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def report(a, idle: dict, busy: dict | None, job_share: float | None, load: list) -> None:
    phases = {"idle": idle, **({"while a job runs": busy} if busy else {})}
    threads = (
        f"OMP_NUM_THREADS={a.server_omp_threads}"
        if a.server_omp_threads
        else "the app's own thread setting"
    )
    print(
        f"\nLearn page, headless Chromium, {threads}; load average (1, 5, 15 min) before "
        f"{' '.join(f'{x:.2f}' for x in load[0])}, after {' '.join(f'{x:.2f}' for x in load[1])} "
        f"({os.cpu_count()} cores)"
        + (f"; the job used {job_share:.2f} CPU s per wall s" if job_share is not None else "")
        + "\n"
    )
    print("| | " + " | ".join(phases) + " | target |")
    print("|---" * (len(phases) + 2) + "|")
    print(
        f"| first visit, navigation → chapter 1 drawn (median [min–max] of {a.cold_repeats} fresh "
        "servers) | " + " | ".join(spread(r["cold"]) for r in phases.values()) + " | < 3 s idle |"
    )
    print(
        "| first visit from the app's start page: Post-train drawn, then the sidebar's "
        '"1. What flatness is" clicked → chapter 1 drawn | '
        + " | ".join(spread(r["start"]) for r in phases.values())
        + " | < 3 s idle |"
    )
    print(
        "| the server's CPU seconds for the first (load-independent) | "
        + " | ".join(spread(r["cpu"]) for r in phases.values())
        + " | |"
    )
    print(
        "| torch loaded by the server at that point | "
        + " | ".join(f"{sum(r['torch'])} of {len(r['torch'])}" for r in phases.values())
        + " | 0 |"
    )
    print(
        "| results computed at the first visit (not shipped) | "
        + " | ".join(" ".join(map(str, r["computed"])) for r in phases.values())
        + " | 0 |"
    )
    print(
        f'\nper chapter: "Next" from the chapter before → this one drawn; slider key press → its '
        f"chart shows the new value's data, median [min–max] of {a.repeats} values that server had "
        f"not shown (after {a.read_seconds:g} s of reading)\n"
    )
    print(
        "| chapter | "
        + " | ".join(f"{k}: reached by Next | {k}: slider | {k}: server CPU" for k in phases)
        + " | target |"
    )
    print("|---" * (3 * len(phases) + 2) + "|")
    for header, (_, slider, fig, _) in CHAPTERS.items():
        t = [
            spread(r["times"][header][k])
            for r in phases.values()
            for k in ("reached", "new", "cpu")
        ]
        print(f"| {header} (`{slider}` → `{fig}`) | " + " | ".join(t) + " | slider < 1 s idle |")
    if any(r["times"][h]["cached"] for r in phases.values() for h in CHAPTERS):
        print(
            "\nvalues already shown by that server (cached): "
            + "; ".join(
                f"{h.split('.')[0]}: "
                + " / ".join(spread(r["times"][h]["cached"]) for r in phases.values())
                for h in CHAPTERS
            )
        )


if __name__ == "__main__":
    main()
