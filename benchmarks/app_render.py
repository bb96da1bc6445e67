"""How fast the app's pages render in a real browser, idle and while a job runs, and how much CPU
the app process uses while it only polls.

    python benchmarks/app_render.py [--repeats 5] [--poll-seconds 30]

Starts `streamlit run app/main.py` on a free port with a fresh runs folder, prepares one finished
PoF run of the bundled digits model with its cached comparison, then, in headless Chromium:
  - time from the server being healthy to the first page fully rendered (the model card drawn);
  - time to render the Post-train page and the Compare page (one chart; all 6 charts it opens with, the 3-D surfaces being behind a tab), first with no
    job running, then while a long pre-training job runs, side by side; prints running / idle;
  - CPU seconds of the app process per wall second while a page watches the running job (the
    live view polls every second) and while an idle page stays open, next to the job's own share.
Target: every render under 3 s on this 2-core machine, also while a job runs.
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
    """A finished PoF run of the default bundled model with its whole comparison cached."""
    run(
        "-m",
        "pof",
        "post-train",
        "assets/digits-cnn-small-sgd.safetensors",
        "--epochs",
        "2",
        "--out",
        str(runs / "finished"),
        "--quiet",
    )
    run("-m", "analysis", "report", str(runs / "finished"), "--quiet")
    run(
        "-m",
        "pof",
        "post-train",
        "assets/digits-cnn-small-sgd.safetensors",
        "--epochs",
        "2",
        "--out",
        str(runs / "curves-only"),
        "--quiet",
    )  # no analysis: its Compare page has one chart
    return "finished"


def render(page, url: str, ready) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    ready(page)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--poll-seconds", type=float, default=30.0)
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="pof-app-bench-"))
    runs = tmp / "runs"
    print("preparing a finished run and its comparison ...", flush=True)
    finished = prepare(runs)
    port = free_port()
    env = {**os.environ, "POF_RUNS": str(runs)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    job = None
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        healthy = time.perf_counter()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1300, "height": 1200})
            post_ready = lambda pg: pg.get_by_text("94,186").wait_for(timeout=60_000)

            def compare_ready(pg):
                pg.get_by_text("From before to after").wait_for(timeout=60_000)
                pg.wait_for_function(f"{CHARTS_JS} >= 6", timeout=60_000)

            page.goto(url)
            post_ready(page)
            first = time.perf_counter() - healthy
            print(
                f"\nserver healthy -> first page (Post-train, cold) fully rendered: {first:.2f} s"
            )

            def curves_ready(pg):
                pg.get_by_text("Accuracy and loss over the post-training").wait_for(timeout=60_000)
                pg.wait_for_function(f"{CHARTS_JS} >= 1", timeout=60_000)

            pages = {
                "Post-train": (url, post_ready),
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
                f"\nCPU share while polling, {a.poll_seconds:.0f} s each (CPU seconds per wall second)\n"
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
                print(
                    f"| {label} | {app_share:.3f} | {job_share:.3f} | {app_share / job_share:.3f} |"
                )
            browser.close()
    finally:
        if job:
            job.kill()
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
