"""Section 3 of the Learn page on real digits: the bundled SGD and SAM models' exact last-layer
Hessian, and their whole-network Hessian as a background job (the Inspect page's, shared cache)."""

import streamlit as st

from analysis.cache import file_digest
from analysis.compare import (
    ReportConfig,
    Subject,
    comparison_dir,
    labels_for,
    load_results,
    part_dir,
)
from analysis.learn_results import DigitsPair, LastLayerSummary
from app.classroom import job_refusal
from app.comparison import watch_parts
from app.figures.spectra import hessian_bars
from app.jobs import runs_root, start_job
from app.learn.common import engine, fmt, refs, stored
from pof.models.catalogue import ASSETS, bundled
from pof.options import to_argv
from pof.runs.run import Run


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def digits_pair() -> dict[str, LastLayerSummary]:
    paths = {
        label: str(ASSETS / f"digits-cnn-small-{label.lower()}.safetensors")
        for label in ("SGD", "SAM")
    }
    pair = stored(
        "digits-pair",
        DigitsPair,
        lambda: DigitsPair(engine().bundled_last_layer(paths)),
        files=[file_digest(p) for p in paths.values()],
    )
    return pair.models


def digits_pair_section() -> None:
    """Section 3 on real digits, outside its fragment: the whole-network part is a background job,
    watched by app.comparison's poller (a fragment of its own)."""
    with st.expander("The same contrast on real digits: the bundled SGD and SAM models"):
        pair, manifest = digits_pair(), bundled()
        st.table(
            {
                label: {
                    "last-layer λ_max (exact)": fmt(r.top),
                    "last-layer trace (exact)": fmt(r.trace),
                    "training loss": fmt(r.loss),
                    "test loss": fmt(r.test_loss),
                    "test accuracy": f"{r.test_acc:.2%}",
                }
                for label, r in pair.items()
            }
        )
        flatter = min(pair, key=lambda k: pair[k].top)
        st.markdown(
            f"{manifest['digits-cnn-small-sgd']['description']}; "
            f"{manifest['digits-cnn-small-sam']['description']}. "
            f"Measured on all {pair[flatter].n_samples} training images, the last layer of the "
            f"**{flatter}** model has the smaller top eigenvalue (flatter by that measure; the "
            "table gives the trace too): at this small ρ and on a problem this easy, "
            "SAM's effect on the last layer is small and need not point the expected way. The "
            "whole network's Hessian takes a minute or two on a CPU, so it is a background job "
            "(the same as the Inspect page's, which opens with this pair and adds per-layer "
            "sharpness)."
        )
        paths = [
            str(ASSETS / "digits-cnn-small-sgd.safetensors"),
            str(ASSETS / "digits-cnn-small-sam.safetensors"),
        ]
        labels = labels_for(paths)
        root, cfg = runs_root(), ReportConfig()  # the Inspect page's defaults: a shared cache
        out = comparison_dir(root, Subject(labels, "digits"), cfg)
        job = Run(part_dir(out, "hessian"))
        result = load_results(out, paths).get("hessian")
        state = job.status()["state"]
        if result:
            st.plotly_chart(hessian_bars(result), width="stretch", key="s3-digits-bars")
            st.caption(
                "What to look at: the whole network's top eigenvalues and trace "
                f"({cfg.samples} training images), next to the last layer's exact ones, for SGD "
                "and SAM."
            )
        elif state in ("queued", "running"):
            watch_parts({"hessian": job}, {"hessian": "Whole-network Hessian of the digits pair"})
        elif st.button(
            "Compute the whole network's Hessian for this pair (background job)",
            key="s3-digits-job",
        ):
            if refused := job_refusal():
                st.error(refused)
                return
            start_job(
                job.path,
                [
                    "-m",
                    "analysis",
                    "compare",
                    *paths,
                    *[a for label in labels for a in ("--label", label)],
                    "--dataset",
                    "digits",
                    "--part",
                    "hessian",
                    "--out",
                    str(out),
                    *to_argv(cfg),
                    "--quiet",
                ],
                root,
            )
            st.rerun()
        elif state == "failed":
            st.error(f"The last attempt failed: {job.status().get('error', '')}")
    refs("keskar", "foret", "li")
