"""What the Learn page's sections share: the pair of networks they compare, the references, number
formatting, the disk store of its results, and the cached computations more than one section
reads.

A section's first view reads its results from the store without importing torch (1.6 s of a first
visit): results are torch-free types (analysis.learn_results), and the engine that computes them,
analysis.learn, is imported by `engine()` only when a result is not stored."""

import dataclasses
import threading
from pathlib import Path

import streamlit as st

from analysis.learn_results import Recipe, RecipeCurvature, TrainingSummary
from analysis.learn_store import Store
from app.jobs import runs_root
from pof.config import PoFConfig
from pof.models.catalogue import ASSETS

MOONS = ASSETS / "moons-mlp.safetensors"  # the bundled two-moons MLP of section 4

# The pair of sections 1, 2 and 5: 100 training points of two noisy moons, each network trained
# until its training loss first reaches 0.15. They are named by their recipe, not "sharp" and
# "flat": λ_max and the trace order them one way, adaptive sharpness the other (section 1 says so).
TOY = dict(dataset="moons", points=200, noise=0.25, target_loss=0.15)
LARGE_BATCH = Recipe(batch_size=100, optimizer="sgd", **TOY)
SMALL_SAM = Recipe(batch_size=16, optimizer="sam", rho=0.2, **TOY)
PAIR = {"large-batch SGD": LARGE_BATCH, "small-batch SAM": SMALL_SAM}  # recipes: section 1
BATCHES = [4, 8, 16, 32, 64, 100]
POF = PoFConfig()  # the paper's settings, as the post-training uses them
REFS = {
    "hochreiter": "Hochreiter & Schmidhuber, *Flat Minima*, Neural Computation 1997",
    "keskar": (
        "Keskar et al., *On Large-Batch Training for Deep Learning: Generalization Gap and Sharp "
        "Minima*, ICLR 2017"
    ),
    "dinh": "Dinh et al., *Sharp Minima Can Generalize For Deep Nets*, ICML 2017",
    "li": "Li et al., *Visualizing the Loss Landscape of Neural Nets*, NeurIPS 2018",
    "foret": (
        "Foret et al., *Sharpness-Aware Minimization for Efficiently Improving Generalization*, "
        "ICLR 2021"
    ),
    "kwon": "Kwon et al., *ASAM: Adaptive Sharpness-Aware Minimization*, ICML 2021",
    "jiang": "Jiang et al., *Fantastic Generalization Measures and Where to Find Them*, ICLR 2020",
    "cohen": (
        "Cohen et al., *Gradient Descent on Neural Networks Typically Occurs at the Edge of "
        "Stability*, ICLR 2021"
    ),
    "sato": (
        "Sato et al., *PoF: Post-Training of Feature Extractor for Improving Generalization*, "
        "ICML 2022"
    ),
}


def refs(*keys: str) -> None:
    st.caption("References: " + "; ".join(REFS[k] for k in keys) + ".")


def fmt(x: float) -> str:
    return f"{x:.3g}"


# A curvature's estimates with their uncertainty, as the tables show them: Lanczos' residual
# ‖Hv − λv‖ bounds the distance from λ to a true eigenvalue; a Hutchinson trace has its standard
# error.
TOP, TRACE = "λ_max (Lanczos, ± residual)", "trace (Hutchinson, ± one s.e.)"


def top_text(c) -> str:
    return f"{fmt(c.top.eigenvalues[0])} ± {c.top.residuals[0]:.1g}"


def trace_text(c) -> str:
    return f"{fmt(c.trace.trace)} ± {c.trace.stderr:.2g}"


# --- the disk store: shipped entries in assets/learn, computed ones in RUNS/.cache/learn -------

_STORES: dict[Path, Store] = {}


def store() -> Store:
    """The store of the runs root in force; trained networks and their curvature go there too."""
    root = runs_root()
    if root not in _STORES:
        _STORES[root] = Store(root / ".cache" / "learn", shipped=ASSETS / "learn")
    return _STORES[root]


def engine():
    """analysis.learn, keeping its trained networks in the store: imported (with torch) the first
    time a result must be computed or a network is needed."""
    from analysis import learn

    learn.use_store(store())
    return learn


_warmed = threading.Lock()


WARM_UP_DELAY = 5.0  # s: after the browser has drawn the first view, before the reader moves


def warm_up() -> None:
    """Once per server, after the first view: import in the background what the first new slider
    value would otherwise import while the reader waits (torch and the engine, which the first view
    does not need; scikit-learn, for the point sets; the machinery torch loads with its first
    optimizer) and load chapter 4's bundled model: 3-4 CPU seconds, no training. Started
    WARM_UP_DELAY later, so as not to slow the first view's drawing (measured: it did)."""
    if _warmed.acquire(blocking=False):
        timer = threading.Timer(WARM_UP_DELAY, _import_ahead)
        timer.daemon = True  # never holds up the server's exit
        timer.start()


def _import_ahead() -> None:
    import torch

    learn = engine()
    learn.toy_data(TOY["dataset"], TOY["points"], TOY["noise"])
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    learn.bundled(str(MOONS))


def stored(kind: str, cls: type, compute, **about):
    """compute()'s result, read from the store when it holds one for `about` (its arguments)."""
    about = {k: dataclasses.asdict(v) if isinstance(v, Recipe) else v for k, v in about.items()}
    return store().result(kind, cls, compute, **about)


# --- cached computations (frozen results: cached across reruns and sessions) ----------------------


# The two below read the entries analysis.learn writes for a trained network and its curvature
# (with their tensors: the weights, the top eigenvector), without the tensors.


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def trained(r: Recipe) -> TrainingSummary:
    found = store().peek("trained", TrainingSummary, recipe=dataclasses.asdict(r))
    return found or engine().train(r).summary()


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def curvature(r: Recipe) -> RecipeCurvature:
    found = store().peek("curvature", RecipeCurvature, recipe=dataclasses.asdict(r))
    # no tensors in the cache
    return found or dataclasses.replace(engine().recipe_curvature(r), vector=None)
