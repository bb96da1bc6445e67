"""How fast the Learn page answers in a real browser: its cold first load, and, section by section,
the time from moving a slider to that section's chart showing the new result, idle and while a
background job runs.

    python benchmarks/learn_interactions.py [--repeats 5] [--job-epochs 100000]
                                            [--server-omp-threads N]

Everything runs against `streamlit run app/main.py` on a free port with a fresh, empty runs folder
(POF_RUNS), in headless Chromium, in two phases with a FRESH SERVER EACH:
  1. idle: start the server; time from it being healthy to /learn fully drawn (all 6 section headers
     and at least 10 Plotly charts holding data; the first visit trains the page's networks). Then,
     --repeats times, for each of the 6 sections in turn: focus that section's slider (the pairs of
     tests/test_browser_learn.py), press an arrow key, and time from the key press to the section's
     chart showing different data (Plotly's own `data`, `layout.shapes` and annotations). The next
     press waits until the fragment's run has finished.
  2. while a job runs: start `python -m pof pretrain --model cnn-small --dataset digits --epochs
     <--job-epochs> --out <tmp>/runs/busy --quiet` in its own process group (Nesterov SGD on both
     cores; far more epochs than the phase lasts, it is killed at the end and checked to be still
     running then), wait 5 s, start a fresh server and do the same: cold load, then the presses.

Not flattering the numbers with Streamlit's cache: the page caches every result per argument
(st.cache_data, and analysis.learn's lru_cache of trained networks), so moving a slider back to a
value it had is instant. A fresh server per phase starts with empty caches, and within a phase each
slider moves ArrowLeft one step at a time from its default, so every press asks for a value this
server has never computed. The slider with the least room (section 3's batch size: 100 -> 64 -> 32
-> 16 -> 8 -> 4; section 5's α: 5 -> 2 -> 1 -> 0.5 -> 0.2 -> 0.1) allows exactly 5 new values; with
more --repeats the slider, once at its minimum, walks right through values it already showed (timed
and reported separately as "cached") until it reaches new ones again. Medians are over new values
only. What remains cached by design: the fixed second network of a pair (e.g. section 3's recipe B,
trained at the cold load) and the networks trained once that a new slider value only re-measures
(section 1's width, 2's shift, 4's γ, 5's α).
Target: every answer under 3 s on this 2-core machine, also while a job runs.

--server-omp-threads N starts both servers with OMP_NUM_THREADS=N (the app itself sets torch to one
thread when a page first imports torch, app/torch_threads.py, which takes precedence; the option is
kept to reproduce the finding recorded in benchmarks/RESULTS.md on a version without that
setting).
"""

from __future__ import annotations

import argparse
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
from app_render import CHARTS_JS, CHROMIUM, cpu_seconds, free_port

ROOT = Path(__file__).resolve().parents[1]

# The sliders moved, the charts watched, and what a chart shows. tests/test_browser_learn.py holds
# the same two: a deliberate copy, as benchmarks and tests do not import each other.
# section -> (the slider moved, the figure that must change)
SECTIONS = {
    "1. What flatness is": ("s1-width", "s1-fig"),
    "2. Why it might matter": ("s2-shift", "s2-fig"),
    "3. What makes minima flat or sharp": ("s3-a-batch", "s3-bars"),
    "4. What PoF does, step by step": ("s4-gamma", "s4-search"),
    "5. The caveats": ("s5-alpha", "s5-bars"),
    "6. The edge of stability": ("s6-lr", "s6-fig"),
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


def cold_load(page, url: str, healthy: float) -> tuple[float, dict]:
    """Server healthy -> every section header shown and >= 10 charts drawn; also when each header
    showed."""
    page.goto(url + "/learn")
    headers = {}
    for header in SECTIONS:
        page.get_by_role("heading", name=header).wait_for(timeout=TIMEOUT_MS)
        headers[header] = time.perf_counter() - healthy
    page.wait_for_function(f"{CHARTS_JS} >= 10", timeout=TIMEOUT_MS)
    elapsed = time.perf_counter() - healthy
    # the whole script has run before any slider moves
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)
    return elapsed, headers


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


def phase(pw, runs: Path, repeats: int, label: str, omp_threads: int | None = None) -> dict:
    server, url = start_server(runs, omp_threads)
    try:
        healthy = wait_healthy(url)
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1300, "height": 1200})
        cold, headers = cold_load(page, url, healthy)
        print(
            f"[{label}] server healthy -> /learn fully drawn: {cold:.2f} s (headers at "
            + ", ".join(f"{h.split('.')[0]}: {t:.1f} s" for h, t in headers.items())
            + ")",
            flush=True,
        )
        seen = {}
        for slider, _ in SECTIONS.values():
            value, lo, _, step, _ = page.evaluate(SLIDER_JS, slider)
            seen[slider] = [round((value - lo) / step)] * 2
        times = {h: {"new": [], "cached": []} for h in SECTIONS}
        for rep in range(repeats):
            for header, (slider, fig) in SECTIONS.items():
                elapsed, cached, text = press(page, slider, fig, seen[slider])
                times[header]["cached" if cached else "new"].append(elapsed)
                print(
                    f"[{label}] repeat {rep + 1}, {header}: {slider} -> {text}"
                    f"{' (cached)' if cached else ''}: {elapsed:.2f} s",
                    flush=True,
                )
        assert not page.locator("[data-testid=stException]").count(), "the page shows an exception"
        browser.close()
        return {"cold": cold, "headers": headers, "times": times}
    finally:
        stop(server)


def fmt_med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s" if xs else "-"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5)
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
        help="OMP_NUM_THREADS for the app's server only (default: unset, torch's own choice)",
    )
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pof-learn-bench-"))
    runs = tmp / "runs"
    runs.mkdir()
    job = None
    try:
        with sync_playwright() as pw:
            print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
            idle = phase(pw, runs, a.repeats, "idle", a.server_omp_threads)
            # a long job that keeps both cores busy, as a real pre-training would
            job = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pof",
                    "pretrain",
                    "--model",
                    "cnn-small",
                    "--dataset",
                    "digits",
                    "--epochs",
                    str(a.job_epochs),
                    "--out",
                    str(runs / "busy"),
                    "--quiet",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(5)
            job_cpu0, t0 = cpu_seconds(job.pid), time.perf_counter()
            busy = phase(pw, runs, a.repeats, "job running", a.server_omp_threads)
            if job.poll() is not None:
                raise RuntimeError(
                    f"the background job ended early (exit {job.returncode}): raise --job-epochs"
                )
            job_share = (cpu_seconds(job.pid) - job_cpu0) / (time.perf_counter() - t0)
    finally:
        stop(job)
        shutil.rmtree(tmp, ignore_errors=True)

    threads = (
        f"OMP_NUM_THREADS={a.server_omp_threads}"
        if a.server_omp_threads
        else "the app's own thread setting"
    )
    print(
        f"\nLearn page, headless Chromium, fresh server per phase ({threads} in the app); the job "
        f"used {job_share:.2f} CPU s per wall s during its phase ({os.cpu_count()} cores)\n"
    )
    print("| | idle | while a job runs | ratio running/idle | target (< 3 s) |")
    print("|---|---|---|---|---|")
    print(
        "| cold first load of /learn (server healthy → 6 headers, ≥ 10 charts) | "
        f"{idle['cold']:.2f} s | {busy['cold']:.2f} s | {busy['cold'] / idle['cold']:.2f} | "
        f"{'met' if max(idle['cold'], busy['cold']) < 3 else 'missed'} |"
    )
    print(
        "\nslider key press → the section's chart shows the new value's data, median of "
        f"{a.repeats} values never computed before by that server\n"
    )
    print(
        "| section | idle median s | while a job runs median s | ratio running/idle "
        "| target (< 3 s) |"
    )
    print("|---|---|---|---|---|")
    for header, (slider, fig) in SECTIONS.items():
        i, b = idle["times"][header]["new"], busy["times"][header]["new"]
        ratio = f"{statistics.median(b) / statistics.median(i):.2f}" if i and b else "-"
        worst = max(statistics.median(x) for x in (i, b) if x) if i or b else float("nan")
        print(
            f"| {header} (`{slider}` → `{fig}`) | {fmt_med(i)} | {fmt_med(b)} | {ratio} | "
            f"{'met' if worst < 3 else 'missed'} |"
        )
    if any(r["times"][h]["cached"] for r in (idle, busy) for h in SECTIONS):
        print("\nvalues already computed by that server (cached), median\n")
        print("| section | idle | while a job runs |")
        print("|---|---|---|")
        for header in SECTIONS:
            print(
                f"| {header} | {fmt_med(idle['times'][header]['cached'])} | "
                f"{fmt_med(busy['times'][header]['cached'])} |"
            )
    print("\nevery new-value time, in order (idle / while a job runs)\n")
    for header in SECTIONS:
        print(
            f"- {header}: "
            + " ".join(f"{t:.2f}" for t in idle["times"][header]["new"])
            + " / "
            + " ".join(f"{t:.2f}" for t in busy["times"][header]["new"])
        )


if __name__ == "__main__":
    main()
