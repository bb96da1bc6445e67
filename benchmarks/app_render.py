"""How fast the app's pages render in a real browser, idle and while a job runs, and how much CPU
the app process uses while it only polls.

    python benchmarks/app_render.py [--repeats 5] [--poll-seconds 30] [--cold-repeats 5]
                                    [--cold-only]

In headless Chromium, started before any server so that its own start-up is not counted:
  - cold start, --cold-repeats times, each on a FRESH server (`streamlit run app/main.py` on a free
    port, an empty runs folder): time from spawning the server to it answering its health check,
    and from there to the first page (Post-train) fully rendered: the bundled default model's card
    (its parameter count) and the form's Start button, the page's last widget. Also says whether
    the server had loaded torch by then (libtorch mapped in its process). Target: under 2 s from
    healthy to rendered.
Then (not with --cold-only) one server with a fresh runs folder holding one finished PoF run of the
bundled digits model with its cached comparison:
  - time to render the Post-train page and the Compare page (one chart; all 6 charts it opens
    with, the 3-D surfaces being behind a tab), first with no job running, then while a long
    pre-training job runs, side by side; prints running / idle;
  - CPU seconds of the app process per wall second while a page watches the running job (the
    live view polls every second) and while an idle page stays open, next to the job's own share.
Target: every render under 3 s on this 2-core machine, also while a job runs.

To compare with an older version, run this file from a checkout of it, e.g.
`git worktree add /tmp/pof-old REV && cp benchmarks/app_render.py /tmp/pof-old/benchmarks/` and,
there, `PYTHONPATH=$PWD python benchmarks/app_render.py --cold-only`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHARTS_JS = (
    "[...document.querySelectorAll('.js-plotly-plot')].filter(e => (e.data || []).length).length"
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def prepare(runs: Path) -> str:
    """A finished PoF run of the default bundled model with its whole comparison cached, and one
    without analyses (its Compare page has one chart)."""
    for name in ("finished", "curves-only"):
        checkpoint = "assets/digits-cnn-small-sgd.safetensors"
        run(
            "-m",
            "pof",
            "post-train",
            checkpoint,
            "--epochs",
            "2",
            "--out",
            str(runs / name),
            "--quiet",
        )
    run("-m", "analysis", "report", str(runs / "finished"), "--quiet")
    return "finished"


def render(page, url: str, ready) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    ready(page)
    return time.perf_counter() - t0


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app/main.py` on a free port with its runs folder; returns once it is
    healthy."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=ROOT,
        env={**os.environ, "POF_RUNS": str(runs)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.02)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def post_train_ready(page) -> None:
    """The default model's card (its parameter count) and the form's Start button are drawn."""
    page.get_by_text("94,186").wait_for(timeout=60_000)
    page.get_by_role("button", name="Start").wait_for(timeout=60_000)


def torch_loaded(pid: int) -> bool:
    """Whether the process has torch's library mapped, i.e. has imported torch."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def cold_start(browser, tmp: Path, repeats: int) -> None:
    spawn_to_healthy, healthy_to_page, loaded = [], [], []
    for i in range(repeats):
        page = browser.new_page(viewport={"width": 1300, "height": 1200})
        t0 = time.perf_counter()
        server, url = start_server(tmp / f"cold-{i}")
        healthy = time.perf_counter()
        try:
            page.goto(url)
            post_train_ready(page)
            rendered = time.perf_counter()
            loaded.append(torch_loaded(server.pid))
        finally:
            stop_server(server)
            page.close()
        spawn_to_healthy.append(healthy - t0)
        healthy_to_page.append(rendered - healthy)
    first = statistics.median(healthy_to_page)
    print(f"\ncold start: fresh server to first page rendered, median of {repeats}\n")
    print("| server spawned → healthy | healthy → Post-train rendered | torch loaded by then |")
    print("|---|---|---|")
    print(
        f"| {statistics.median(spawn_to_healthy):.2f} s | {first:.2f} s "
        f"(min {min(healthy_to_page):.2f}, max {max(healthy_to_page):.2f}; target < 2 s: "
        f"{'met' if first < 2 else 'missed'}) | {sum(loaded)} of {repeats} servers |"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--poll-seconds", type=float, default=30.0)
    p.add_argument("--cold-repeats", type=int, default=5)
    p.add_argument("--cold-only", action="store_true", help="measure the cold start only")
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pof-app-bench-"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            cold_start(browser, tmp, a.cold_repeats)
            if not a.cold_only:
                warm_pages(browser, tmp / "runs", a)
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def warm_pages(browser, runs: Path, a) -> None:
    print("\npreparing a finished run and its comparison ...", flush=True)
    finished = prepare(runs)
    server, url = start_server(runs)
    job = None
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 1200})

        def compare_ready(pg):
            pg.get_by_text("From one to the other").wait_for(timeout=60_000)
            pg.wait_for_function(f"{CHARTS_JS} >= 6", timeout=60_000)

        def curves_ready(pg):
            pg.get_by_text("Accuracy and loss over the post-training").wait_for(timeout=60_000)
            pg.wait_for_function(f"{CHARTS_JS} >= 1", timeout=60_000)

        render(page, url, post_train_ready)  # this server's first page, measured above
        pages = {
            "Post-train": (url, post_train_ready),
            "Compare, curves only (Plotly's own start-up)": (
                f"{url}/compare?run=curves-only",
                curves_ready,
            ),
            "Compare, all 6 cached charts it opens with": (
                f"{url}/compare?run={finished}",
                compare_ready,
            ),
        }
        times = {(name, busy): [] for name in pages for busy in (False, True)}
        for busy in (False, True):
            if busy:  # a long job that keeps both cores busy, as a real post-training would
                job = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "pof",
                        "pretrain",
                        "--dataset",
                        "digits",
                        "--epochs",
                        "500",
                        "--out",
                        str(runs / "busy"),
                        "--quiet",
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(5)
            for _ in range(a.repeats):
                for name, (u, ready) in pages.items():
                    times[(name, busy)].append(render(page, u, ready))

        print(f"\nrender time, median of {a.repeats} (target < 3 s)\n")
        print("| page | idle | while a job runs | running / idle |")
        print("|---|---|---|---|")
        for name in pages:
            idle, busy = (
                statistics.median(times[(name, False)]),
                statistics.median(times[(name, True)]),
            )
            print(f"| {name} | {idle:.2f} s | {busy:.2f} s | {busy / idle:.2f} |")

        print(
            f"\nCPU share while polling, {a.poll_seconds:.0f} s each (CPU seconds per wall "
            "second)\n"
        )
        print("| page open | app process | the job | app / job |")
        print("|---|---|---|---|")
        for label, u in (
            ("Runs page watching the running job", f"{url}/runs"),
            ("Post-train page, nothing selected", url),
        ):
            page.goto(u)
            page.wait_for_timeout(3000)
            app0, job0, t0 = cpu_seconds(server.pid), cpu_seconds(job.pid), time.perf_counter()
            page.wait_for_timeout(a.poll_seconds * 1000)
            wall = time.perf_counter() - t0
            app_share, job_share = (
                (cpu_seconds(server.pid) - app0) / wall,
                (cpu_seconds(job.pid) - job0) / wall,
            )
            print(f"| {label} | {app_share:.3f} | {job_share:.3f} | {app_share / job_share:.3f} |")
    finally:
        if job:
            job.kill()
        stop_server(server)


if __name__ == "__main__":
    main()
