"""Regenerate the Learn page's shipped results in assets/learn (analysis.learn_store).

    python assets/make_learn_cache.py

Runs the app itself (streamlit's AppTest) with the Learn store writing here instead of the runs
folder: each chapter's first view, then each chapter's main slider through all its values (the
others at their defaults), so that a first visit and every such slider read results instead of
computing them. Chapter 4's slider values are not shipped (660 KB each, with their three decision
maps): a new γ or other setting of that chapter is computed while the reader waits, its bundled
model loaded ahead by the warm-up. Every entry is named by the engine's sources and the library
versions; after a change to them the page computes what is missing into the runs folder, and this
script makes the shipped set current again.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from analysis.learn_store import Store  # noqa: E402
from app.jobs import runs_root  # noqa: E402
from app.learn import common  # noqa: E402
from app.learn.chapters import CHAPTERS  # noqa: E402

# chapter -> {slider key: the values to walk through} (the first view holds each default)
WALKS = {
    1: {"s1-width": [round(0.1 * k, 1) for k in range(1, 41)]},
    2: {"s2-shift": [round(0.05 * k, 2) for k in range(21)]},
    3: {"s3-a-batch": common.BATCHES},
    4: {},
    5: {"s5-alpha": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]},
    6: {"s6-lr": [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]},
}


def main() -> None:
    out = HERE / "learn"
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["POF_RUNS"] = tmp  # the digits job's folder, if the page looked for one
        store = Store(out)  # nothing shipped to read: everything is computed and written here
        common._STORES[runs_root()] = store
        t0 = time.perf_counter()
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600).run()
        for number, walks in WALKS.items():
            at.switch_page(CHAPTERS[number - 1].page).run()
            assert not at.exception, (number, at.exception)
            for key, values in walks.items():
                # a widget found after each run: the element tree is rebuilt by every run
                widget = at.slider if key in ("s1-width", "s2-shift") else at.select_slider
                default = widget(key=key).value
                for v in [*values, default]:
                    widget(key=key).set_value(v).run()
                    assert not at.exception, (key, v, at.exception)
                print(f"{key}: {len(values)} values", flush=True)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(
        f"{len(store.computed)} entries, {size / 1e6:.2f} MB in {out} "
        f"({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
