"""Learn: flat minima taught by live experiments. Every section is a short explanation and one
experiment on models small enough to train in a fraction of a second (analysis.learn); each is an
st.fragment, so moving a slider reruns that section alone, and results are cached so that going
back and forth is instant. Every number shown is computed here, never typed in."""

import streamlit as st

from analysis import learn
from analysis.compare import (
    ReportConfig,
    Subject,
    comparison_dir,
    labels_for,
    load_results,
    part_dir,
)
from app.comparison import watch_parts
from app.figures.landscapes import contours_2d, slices_1d
from app.figures.learn import decision_maps, eigen_slices, line_search_figure, train_test_slices
from app.figures.spectra import hessian_bars
from app.jobs import runs_root, start_job
from pof.config import PoFConfig
from pof.models.catalogue import ASSETS, bundled
from pof.options import to_argv
from pof.runs.run import Run

# The pair of sections 1, 2 and 5: 100 training points of two noisy moons, each network trained
# until its training loss first reaches 0.15. Full-batch gradient descent settles in a sharp
# valley; small batches with SAM find a flat one (measured below, not assumed).
TOY = dict(dataset="moons", points=200, noise=0.25, target_loss=0.15)
SHARP = learn.Recipe(batch_size=100, optimizer="sgd", **TOY)
FLAT = learn.Recipe(batch_size=16, optimizer="sam", rho=0.2, **TOY)
PAIR = {"sharp (full batch, SGD)": SHARP, "flat (batch 16, SAM)": FLAT}
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
    "sato": (
        "Sato et al., *PoF: Post-Training of Feature Extractor for Improving Generalization*, "
        "ICML 2022"
    ),
}


def refs(*keys: str) -> None:
    st.caption("References: " + "; ".join(REFS[k] for k in keys) + ".")


# --- cached computations (plain data: cached across reruns and sessions) ------------------------


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def trained(r: learn.Recipe) -> dict:
    return learn.train(r).summary()


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def curvature(r: learn.Recipe) -> dict:
    return {k: v for k, v in learn.recipe_curvature(r).items() if k != "vector"}


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def eigen_slice(r: learn.Recipe, width: float) -> dict:
    return learn.eigen_slice(r, width)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def train_test_slice(r: learn.Recipe, seed: int, shift: float) -> dict:
    return learn.train_test_slice(r, 1.0, seed, shift=shift)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def picture(r: learn.Recipe) -> dict:
    d = learn.toy_data(r.dataset, r.points, r.noise)
    return {"map": learn.decision_map(learn.train(r).model, d), "points": learn.points(d)}


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def surface(r: learn.Recipe) -> dict:
    return learn.surface(r)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def walkthrough(weak_size: int, weak_seed: int, gamma: float, steps: int, lr: float) -> dict:
    model, d = bundled_moons()
    return learn.pof_walkthrough(model, d, weak_size, weak_seed, gamma, steps, lr)


@st.cache_resource(show_spinner=False)
def bundled_moons():
    from pof.models.checkpoints import data_for, load_checkpoint

    path = ASSETS / "moons-mlp.safetensors"
    model, meta = load_checkpoint(path)
    return model, data_for(path, meta["dataset"])


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def digits_pair() -> dict:
    return learn.bundled_last_layer(
        {
            "SGD": str(ASSETS / "digits-cnn-small-sgd.safetensors"),
            "SAM": str(ASSETS / "digits-cnn-small-sam.safetensors"),
        }
    )


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def rescaling(alpha: float) -> dict:
    return learn.rescaling_report(FLAT, alpha)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def flatness_table() -> dict:
    recipes = [
        learn.Recipe(batch_size=b, optimizer=o, rho=0.2, **TOY)
        for b in (8, 32, 100)
        for o in ("sgd", "sam")
    ]
    return learn.flatness_and_test_loss(recipes)


def fmt(x: float) -> str:
    return f"{x:.3g}"


# --- the page -------------------------------------------------------------------------------------

st.title("Learn: what a flat minimum is")
st.markdown(
    "A minimum of the training loss is **flat** when the loss stays low as the weights move away "
    "from it, "
    "and **sharp** when it climbs quickly. The idea that flat minima generalize better is old "
    "(Hochreiter & Schmidhuber 1997) and still debated. This page shows it with experiments small "
    "enough "
    "to run while you watch: tiny networks on 2-D point sets, trained and measured by the same "
    "engine as the "
    "rest of the app. Every number is computed, not typed in. The first visit trains and measures "
    "the "
    "page's networks (about 8 seconds on a 2-core CPU, once); after that each change answers "
    "within a second."
)
st.caption("The figures: drag to zoom, double-click to reset; hover for values.")


@st.fragment
def what_flatness_is() -> None:
    st.header("1. What flatness is")
    st.markdown(
        "Near a minimum w\\*, the loss is nearly quadratic: L(w\\* + t·v) ≈ L(w\\*) + ½·t²·vᵀHv, "
        "where H is the "
        "**Hessian**, the matrix of second derivatives of the loss with respect to the weights. "
        "The direction in "
        "which the loss climbs fastest is H's top eigenvector, and the curvature along it is the "
        "**top "
        "eigenvalue λ_max**: large λ_max, sharp minimum; small λ_max, flat minimum. The **trace** "
        "of H, the sum of "
        "all its eigenvalues, sums the curvature over all directions. The two networks below were "
        "trained on the "
        f"same {TOY['points'] // 2} points until their training loss first fell to "
        f"{TOY['target_loss']:g} — the same "
        "height, different shapes. (Training stopped there, so each sits near, not exactly at, "
        "the bottom of its "
        "valley: the dashed model keeps the small slope L'(0) it still has.)"
    )
    width = st.slider(
        "How far to walk along the top eigenvector (t, in parameter-space distance)",
        0.1,
        4.0,
        1.5,
        0.1,
        key="s1-width",
    )
    slices = {label: eigen_slice(r, width) for label, r in PAIR.items()}
    st.plotly_chart(eigen_slices(slices), width="stretch", key="s1-fig")
    st.caption(
        "What to look at: near t = 0 each curve sits on its dashed parabola, whose curvature is "
        "that "
        "network's λ_max. Widen the walk: further out the real loss leaves the quadratic picture."
    )
    rows = {}
    for (
        label,
        r,
    ) in PAIR.items():  # one table: five numbers per network do not fit side by side as metrics
        c, t = curvature(r), trained(r)
        rows[label] = {
            "recipe": f"{r.describe()}, {t['steps']} steps",
            "training loss": fmt(t["train_loss"]),
            "λ_max (Lanczos)": fmt(c["top"]["eigenvalues"][0]),
            "L''(0) of the curve (central difference)": fmt(slices[label]["second_derivative"]),
            "trace (Hutchinson, ± one s.e.)": (
                f"{fmt(c['trace']['trace'])} ± {c['trace']['stderr']:.2g}"
            ),
            f"adaptive sharpness (ρ = {learn.SHARPNESS_RHO:g})": fmt(c["adaptive"]["increase"]),
        }
    st.table(rows)
    st.caption(
        "L''(0) is λ_max found another way: the curve's own second derivative at t = 0. Adaptive "
        "sharpness is the largest rise of the training loss within a ball scaled by |w| per "
        "weight (Kwon et "
        "al. 2021): unchanged when layers are rescaled (section 5)."
    )
    sharp, flat = (curvature(r) for r in PAIR.values())
    ratio = sharp["top"]["eigenvalues"][0] / flat["top"]["eigenvalues"][0]
    if sharp["adaptive"]["increase"] > flat["adaptive"]["increase"]:
        st.markdown(
            f"λ_max differs {ratio:.1f}-fold, and adaptive sharpness, which no rescaling of "
            "layers can "
            "change, orders the two networks the same way."
        )
    else:
        st.markdown(
            f"λ_max differs {ratio:.1f}-fold, but **adaptive sharpness orders them the other way** "
            f"({fmt(sharp['adaptive']['increase'])} vs {fmt(flat['adaptive']['increase'])}): part "
            "of the λ_max gap "
            'is the scale of the weights, not the shape of the valley. Which minimum is "flat" '
            "depends on how "
            "flatness is measured — section 5 shows why."
        )
    refs("hochreiter", "keskar", "kwon")


@st.fragment
def why_it_matters() -> None:
    st.header("2. Why it might matter")
    st.markdown(
        "The test set is a different sample from the training set, so the test loss is a slightly "
        "different "
        "function of the weights. A common picture (Keskar et al. 2017; the first figure of the "
        "PoF paper) treats "
        "the test landscape as the training landscape **shifted**: at the training minimum the "
        "test loss is then "
        "higher by about ½·sᵀHs for a shift s — little for a flat minimum, a lot for a sharp one. "
        "Below: the "
        "training loss of both networks along one random direction, scaled filter by filter to "
        "the weights "
        "(Li et al. 2018) so that distances mean the same for both; the training curve moved by "
        "the shift you "
        "choose (dashed); and the test loss, measured."
    )
    c1, c2 = st.columns(2)
    shift = c1.slider(
        "Shift of the landscape (along the direction)",
        0.0,
        1.0,
        0.3,
        0.05,
        key="s2-shift",
        help="in the direction's units: each filter moves by this fraction of its own norm "
        "(0.1: by a tenth). Real train/test shifts are small; large values exaggerate them",
    )
    seed = c2.number_input("Direction (random seed)", 0, 999, 0, key="s2-seed")
    slices = {label: train_test_slice(r, int(seed), shift) for label, r in PAIR.items()}
    st.plotly_chart(train_test_slices(slices, shift), width="stretch", key="s2-fig")
    st.caption(
        "What to look at: at t = 0 (the trained weights), how much higher the dashed, shifted "
        "curve is "
        "than the dotted one. The same shift costs the sharp network more."
    )
    cols = st.columns(len(PAIR))
    for col, (label, s) in zip(cols, slices.items(), strict=True):
        col.markdown(f"**{label}**")
        a, b, c = col.columns(3)
        a.metric(
            "rise from the shift",
            fmt(s["shift_rise"]),
            help="training loss at −shift along the direction minus training loss at 0",
        )
        b.metric("test loss (measured)", fmt(s["test_at_w"]))
        c.metric("test minimum at t", f"{s['test_min_t']:+.2f}")
    s_sharp, s_flat = slices.values()
    agree = trained(FLAT)["test_loss"] < trained(SHARP)["test_loss"]
    st.markdown(
        f"Measured on these two networks: the shift of {shift:g} raises the sharp one's loss by "
        f"{fmt(s_sharp['shift_rise'])} and the flat one's by {fmt(s_flat['shift_rise'])}. Their "
        "real test losses are "
        f"{fmt(trained(SHARP)['test_loss'])} (sharp) and {fmt(trained(FLAT)['test_loss'])} (flat)"
        + (
            ": here the flatter network does generalize better. "
            if agree
            else ": here the picture fails — the flatter network generalizes worse. "
        )
        + "Real test landscapes are not exact shifts: along this direction the measured test "
        "minimum sits at "
        f"t = {s_sharp['test_min_t']:+.2f} (sharp) and {s_flat['test_min_t']:+.2f} (flat) — try "
        "other directions. "
        "Section 5 shows how far flatness goes as a predictor."
    )
    refs("keskar", "li", "sato")


def recipe_inputs(
    col, key: str, default: learn.Recipe, dataset: str, target: float
) -> learn.Recipe:
    batch = col.select_slider(
        "Batch size",
        BATCHES,
        value=default.batch_size,
        key=f"{key}-batch",
        format_func=lambda b: "all 100 (full batch)" if b == 100 else str(b),
    )
    opt = col.radio(
        "Optimizer",
        ["sgd", "sam"],
        index=["sgd", "sam"].index(default.optimizer),
        horizontal=True,
        key=f"{key}-opt",
        format_func=str.upper,
    )
    rho = col.slider(
        "SAM's radius ρ", 0.01, 0.5, default.rho, 0.01, key=f"{key}-rho", disabled=opt != "sam"
    )
    rho = (
        rho if opt == "sam" else learn.Recipe().rho
    )  # SGD ignores it: one network, not one per slider value
    lr = col.select_slider(
        "Learning rate", [0.01, 0.03, 0.1, 0.3], value=default.lr, key=f"{key}-lr"
    )
    return learn.Recipe(
        dataset=dataset,
        points=TOY["points"],
        noise=TOY["noise"],
        batch_size=batch,
        optimizer=opt,
        rho=rho,
        lr=lr,
        target_loss=target,
    )


@st.fragment
def what_makes_them() -> None:
    st.header("3. What makes minima flat or sharp")
    st.markdown(
        "How a network is trained decides which minimum it ends in. **Small batches** take noisy "
        "steps that "
        "cannot settle in a narrow valley (Keskar et al. 2017). **SAM** (Foret et al. 2021) takes "
        "each step with the "
        "gradient taken at the (approximately) worst point within a radius ρ, so it favours "
        "regions whose whole "
        "neighbourhood is low. "
        "Choose two recipes. Each trains a fresh network until its training loss first reaches "
        "the target, so the "
        "two are compared at the same training loss, not after the same number of steps."
    )
    c0, c1 = st.columns(2)
    dataset = c0.selectbox(
        "Data (100 training points)", ["moons", "circles", "spirals"], key="s3-data"
    )
    target = c1.select_slider(
        "Target training loss", [0.3, 0.25, 0.2, 0.15, 0.1], value=0.15, key="s3-target"
    )
    ca, cb = st.columns(2)
    ca.markdown("**Recipe A**")
    cb.markdown("**Recipe B**")
    ra = recipe_inputs(ca, "s3-a", SHARP, dataset, target)
    rb = recipe_inputs(cb, "s3-b", FLAT, dataset, target)
    recipes = {f"A: {ra.describe()}": ra, f"B: {rb.describe()}": rb}
    summaries = {label: trained(r) for label, r in recipes.items()}
    chance = 1 / learn.toy_data(dataset, TOY["points"], TOY["noise"]).num_classes
    for label, t in summaries.items():
        if t["diverged"] or t["train_acc"] <= chance + 0.05:
            st.error(
                f"{label} {'diverged' if t['diverged'] else 'collapsed to chance'} "
                f"(training accuracy {t['train_acc']:.0%}): its learning rate is too large for "
                "this batch; "
                "lower it. Nothing about it can be measured."
            )
        elif not t["reached_target"]:
            st.warning(
                f"{label} did not reach the target loss in {t['steps']} steps (it stopped at "
                f"{fmt(t['train_loss'])}); compare at a higher target, or give it a larger "
                "learning rate."
            )
    if any(t["diverged"] for t in summaries.values()):
        refs("keskar", "foret", "li")
        return
    st.plotly_chart(
        decision_maps({label: picture(r) for label, r in recipes.items()}),
        width="stretch",
        key="s3-boundary",
    )
    st.caption(
        "What to look at: where each network draws the line between the classes (black), over the "
        "training points. Different recipes, similar training loss, different boundaries."
    )
    st.plotly_chart(
        contours_2d({label: surface(r) for label, r in recipes.items()}),
        width="stretch",
        key="s3-surface",
    )
    st.caption(
        "What to look at: the training loss on a plane through each solution (two "
        "filter-normalized random "
        "directions, ±1): the wider the dark basin around the centre, the flatter the minimum."
    )
    st.plotly_chart(
        hessian_bars({label: curvature(r) for label, r in recipes.items()}),
        width="stretch",
        key="s3-bars",
    )
    st.caption(
        "What to look at: λ_max and the trace, whole network and last layer (exact), side by side."
    )
    cols = st.columns(2)
    for col, (label, t) in zip(cols, summaries.items(), strict=True):
        col.markdown(
            f"**{label}**: {t['steps']} steps, training loss {fmt(t['train_loss'])}, "
            f"test loss {fmt(t['test_loss'])}, test accuracy {t['test_acc']:.1%}"
        )


def digits_pair_section() -> None:
    """Section 3 on real digits, outside its fragment: the whole-network part is a background job,
    watched by app.comparison's poller (a fragment of its own)."""
    with st.expander("The same contrast on real digits: the bundled SGD and SAM models"):
        pair, manifest = digits_pair(), bundled()
        st.table(
            {
                label: {
                    "last-layer λ_max (exact)": fmt(r["top"]),
                    "last-layer trace (exact)": fmt(r["trace"]),
                    "training loss": fmt(r["loss"]),
                    "test loss": fmt(r["test_loss"]),
                    "test accuracy": f"{r['test_acc']:.2%}",
                }
                for label, r in pair.items()
            }
        )
        flatter = min(pair, key=lambda k: pair[k]["top"])
        st.markdown(
            f"{manifest['digits-cnn-small-sgd']['description']}; "
            f"{manifest['digits-cnn-small-sam']['description']}. "
            f"Measured on all {pair[flatter]['n_samples']} training images, the last layer of the "
            f"**{flatter}** model is the flatter one: at this small ρ and on a problem this easy, "
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


@st.fragment
def pof_step_by_step() -> None:
    st.header("4. What PoF does, step by step")
    st.markdown(
        "PoF (Sato et al. 2022) post-trains a network that is already trained. It keeps the last "
        "layer w0 fixed and "
        "trains only the feature extractor — but under a **perturbed** last layer, w̃ = w0 − "
        "γ·η\\*·g, pointing where "
        "*another* batch would move it. Here on the bundled two-moons MLP, one step at a time: "
        "(1) draw a **weak "
        "batch** (circled); (2) compute the last layer's exact gradient **g** on it; (3) walk "
        "along −g, doubling η "
        "until the weak-batch loss exceeds its starting value (**η_max**); (4) take the best of "
        f"{POF.num_partitions} "
        "points in (0, η_max] (**η\\***); (5) scale by **γ** (PoF draws it from U(0, "
        f"{POF.gamma_max:g}); here you "
        "choose); (6) train the "
        "features for a few steps against the perturbed layer — every later step draws its own "
        "weak batch and γ."
    )
    c1, c2, c3 = st.columns(3)
    weak = c1.select_slider(
        "Weak batch size",
        [16, 32, 64, 128, 256, 512],
        value=32,
        key="s4-weak",
        help="The paper uses 256 images of CIFAR's 50,000. ‖δ‖ depends on the draw as much as "
        "on the size (a smaller gradient lets η* grow): try several seeds.",
    )
    seed = c1.number_input("Weak batch (random seed)", 0, 999, 0, key="s4-seed")
    gamma = c2.slider(
        "γ (scale of the perturbation)",
        0.0,
        2.0,
        2.0,
        0.05,
        key="s4-gamma",
        help="2: the far bank of the weak batch's valley, PoF's largest perturbation",
    )
    steps = c3.slider("Feature-training steps", 0, 100, 20, 5, key="s4-steps")
    lr = c3.select_slider(
        "Learning rate of the features",
        [1.6e-4, 0.001, 0.003, 0.01, 0.03, 0.05],
        value=0.01,
        key="s4-lr",
        format_func=lambda v: f"{v:g}" + (" (the paper's)" if v == 1.6e-4 else ""),
    )
    w = walkthrough(weak, int(seed), gamma, steps, lr)
    info = w["info"]
    panels = {
        "w0 (solid) and the perturbed layer w̃ (dashed)": {
            "map": w["boundary"],
            "points": learn.points(bundled_moons()[1]),
            "boundaries": {"boundary with w̃": w["boundary_perturbed"]},
            "highlight": {**w["weak"], "name": "weak batch"},
        }
    }
    if w["boundary_after"]:
        panels[f"after {steps} PoF steps (solid) vs before (dashed)"] = {
            "map": w["boundary_after"],
            "points": learn.points(bundled_moons()[1]),
            "boundaries": {"boundary before": w["boundary"]},
        }
    st.plotly_chart(decision_maps(panels), width="stretch", key="s4-boundary")
    st.caption(
        "What to look at: the dashed line is what the last layer would decide after the "
        "perturbation; PoF "
        "teaches the features to do well under such shifted boundaries."
    )
    st.plotly_chart(line_search_figure(w), width="stretch", key="s4-search")
    st.caption(
        "What to look at: the squares double η until the loss rises above L'(w0) (η_max); the "
        "dots are the "
        f"{POF.num_partitions}-point grid; η* is the lowest of them; γη* is the step actually "
        "taken."
    )
    m = st.columns(5)
    m[0].metric("‖g‖", fmt(info["grad_norm"]))
    m[1].metric("η_max", fmt(info["eta_max"]))
    m[2].metric("η*", fmt(info["eta_star"]))
    m[3].metric("‖δ‖ = γ·η*·‖g‖", fmt(info["delta_norm"]))
    m[4].metric(
        "weak loss at η*",
        fmt(info["weak_loss_star"]),
        f"{info['weak_loss_star'] - info['weak_loss']:+.3g}",
        delta_color="inverse",
        help=f"L'(w0) = {fmt(info['weak_loss'])}; the arrow: the change from it",
    )
    b, a = w["before"], w["after"]
    m = st.columns(4)
    m[0].metric(
        "last-layer λ_max (exact)",
        fmt(a["top"]),
        f"{a['top'] - b['top']:+.3g}",
        delta_color="inverse",
    )
    m[1].metric(
        "last-layer trace (exact)",
        fmt(a["trace"]),
        f"{a['trace'] - b['trace']:+.3g}",
        delta_color="inverse",
    )
    m[2].metric(
        "training loss (with w0)",
        fmt(a["loss"]),
        f"{a['loss'] - b['loss']:+.3g}",
        delta_color="inverse",
    )
    m[3].metric("test accuracy", f"{a['test_acc']:.1%}", f"{a['test_acc'] - b['test_acc']:+.1%}")
    st.caption(
        f"After {steps} feature-training steps at learning rate {lr:g}, measured on all "
        f"{len(bundled_moons()[1].x_train)} training points (the last layer's Hessian is exact: "
        "POF.md's "
        "closed form), arrows = change from before."
    )
    if lr < 0.001 or steps == 0:
        st.info(
            "At this setting nothing visible changes. The paper's rate, 1.6e-4, is applied for 10 "
            "to 50 epochs "
            "of tens of thousands of images — thousands of steps; a few steps at it move nothing "
            "you could see. "
            "Raise the learning rate (0.01) and the number of steps to see the features move "
            "within a few steps."
        )
    st.markdown(
        "Training the features against a perturbed head is not free: measured with the "
        "unperturbed w0, the "
        "training loss can rise while the features adapt. What PoF aims at is a last layer whose "
        "loss is flat "
        "along the directions in which mini-batches disagree — watch the exact λ_max and trace as "
        "you change γ, "
        "the weak batch and the number of steps."
    )
    refs("sato")


@st.fragment
def caveats() -> None:
    st.header("5. The caveats")
    st.markdown(
        "**Sharpness depends on how the function is written down.** A ReLU network computes the "
        "same function if "
        "one layer's weights are multiplied by α > 0 and the next layer's divided by α, yet its "
        "Hessian changes: "
        "any minimum can be made as sharp as you like without changing a single prediction (Dinh "
        "et al. 2017). "
        "Two answers: measure along **filter-normalized** directions (Li et al. 2018), scaled to "
        "the weights, or "
        "use **adaptive sharpness** (Kwon et al. 2021), which measures the worst loss within a "
        "ball scaled by |w|. "
        "Both are unchanged by this rescaling. Try it on the flat network of section 1:"
    )
    alpha = st.select_slider(
        "α: scale the first layer by α and the second by 1/α",
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        value=5.0,
        key="s5-alpha",
    )
    rep = rescaling(alpha)
    models = rep["models"]
    st.plotly_chart(
        hessian_bars({k: v["curvature"] for k, v in models.items()}), width="stretch", key="s5-bars"
    )
    st.caption(
        "What to look at: the same function, a different Hessian — λ_max and the trace move with α."
    )
    st.plotly_chart(
        slices_1d({k: v["slice"] for k, v in models.items()}), width="stretch", key="s5-slices"
    )
    st.caption(
        "What to look at: along a filter-normalized direction the two curves lie on top of each "
        "other."
    )
    rows = {
        k: {
            "λ_max": fmt(v["curvature"]["top"]["eigenvalues"][0]),
            "trace": fmt(v["curvature"]["trace"]["trace"]),
            f"worst-case sharpness (ρ = {learn.SHARPNESS_RHO:g})": fmt(v["sharpness"]["increase"]),
            f"adaptive worst-case sharpness (ρ = {learn.SHARPNESS_RHO:g})": fmt(
                v["adaptive"]["increase"]
            ),
        }
        for k, v in models.items()
    }
    st.table(rows)
    st.caption(
        "Largest change of any output (logit) on the training points: "
        f"{rep['max_logit_change']:.1e} "
        "(rounding only)."
    )
    st.markdown(
        "**Flatness is correlated with generalization, not a guarantee of it.** Large studies "
        "find sharpness "
        "measures among the better predictors of the generalization gap (Jiang et al. 2020), but "
        "no measure "
        "that always holds; on small "
        "problems other differences (how long a network trained, how far its boundary bends) can "
        "outweigh it. "
        "Measure it here across six recipes:"
    )
    if st.button("Train six recipes and compare flatness with test loss", key="s5-table"):
        st.session_state["s5-shown"] = True
    if st.session_state.get("s5-shown"):
        t = flatness_table()
        st.dataframe(t["rows"], hide_index=True)
        st.markdown(
            "Spearman rank correlation between λ_max and test loss over these six: "
            f"**{t['spearman']:+.2f}** "
            "(+1: the sharper, the worse, every time). Six tiny networks on 100 points are an "
            "illustration, not evidence either way."
        )
    st.markdown(
        "**What the PoF paper measured, and what this page cannot show.** Sato et al. post-trained "
        "WideResNet-28-10 networks on CIFAR-10, CIFAR-100, SVHN and Fashion-MNIST for 10 to 50 "
        "epochs, reported "
        "lower test error, and showed that PoF implicitly reduces the Hessian of the loss with "
        "respect to the last "
        "layer. Those effects need real data, real networks and many steps; a two-moons MLP shows "
        "the mechanics — the weak batch, the line search, the perturbed "
        "boundary, the exact Hessian — not the size of the benefit. For that, post-train on the "
        "Post-train page "
        "and compare before and after on the Compare page."
    )
    refs("dinh", "li", "kwon", "jiang", "sato")


what_flatness_is()
why_it_matters()
what_makes_them()
digits_pair_section()
pof_step_by_step()
caveats()
