"""Post-train: choose a trained model and a dataset that fits it, configure PoF or a control, start
it as a background job and watch it.

The app's first page: a bundled model's card is read without torch
(pof.models.catalogue.bundled_card), and torch is imported only to load a checkpoint that is not
bundled.
"""

from pathlib import Path

import streamlit as st

from app.classroom import job_refusal, shared
from app.curvature_view import (
    TRACK_HELP,
    TRACK_LABELS,
    in_field_labels,
    show_curvature,
    tracking_fields,
)
from app.jobs import read_config, runs_root, start_job
from app.live import free_name, live_status, url_run
from app.messages import say
from app.uploads import imported_dir
from pof.cli import config_argv
from pof.config import METHODS, PoFConfig, PostTrainConfig, TrackConfig, default_post_lr
from pof.data.names import DATASETS, TORCHVISION, default_data_root
from pof.models.catalogue import DEFAULT_MODEL, bundled, bundled_card, incompatibility, verify
from pof.models.formats import CheckpointError
from pof.runs.run import Run, list_runs
from pof.validate import ConfigError

METHOD_HELP = {
    "pof": (
        "PoF: train the feature extractor against a last layer moved by γ·η* along −g, where g "
        "is its gradient on a second (weak) batch, η* the step that minimises that batch's loss "
        "along −g, and γ drawn from U(0, gamma max)"
    ),
    "finetune-frozen": "control: the same training with the last layer frozen and unperturbed",
    "finetune": "control: plain fine-tuning of every layer",
    "sam": "control: SAM on every layer",
    "random-direction": "control: PoF's perturbation length in a random direction",
}
# the options' names in the library's messages -> this page's fields
FIELD_LABELS = {
    "epochs": "Epochs",
    "lr": "Learning rate",
    "weak_batch_size": "Weak batch size",
    "gamma_max": "gamma max",
    "seed": "Seed",
    **TRACK_LABELS,
}


@st.cache_data(max_entries=16)
def bundled_model_card(entry: dict, mtime: float) -> dict:
    """A bundled model's card, without torch; call verify(entry) first."""
    return bundled_card(entry)


@st.cache_data(max_entries=64)
def model_card(path: str, mtime: float) -> dict:
    """What the checkpoint is, from its metadata and its weights loaded into its architecture:
    NaN or infinite weights are found here, not in the job."""
    from pof.models.loading import load_checkpoint
    from pof.models.metadata import read_metadata
    from pof.models.networks import count_parameters
    from pof.models.registry import runs_user_code

    meta = read_metadata(path)
    # never run code named inside a file just to draw its card, unless this app saved the file
    # itself
    if runs_user_code(meta["arch"]) and Path(path).parent != imported_dir():
        raise CheckpointError(
            f"it is built by code ({meta['arch']}); post-train it from the command line "
            f"(python -m pof post-train {path} ...), which runs that code."
        )
    model, meta = load_checkpoint(path)
    if meta["classifier"] is None:
        raise CheckpointError(meta["split"])
    return {"meta": meta, "parameters": count_parameters(model), "split": meta["split"]}


root = runs_root()
st.title("Post-train a model with PoF")
st.caption(
    "Choose a trained model and data that fit it, pick PoF or a control, and start: the job runs "
    "in the background (it keeps going if you close the page); watch it here or on the Runs "
    "page, then compare before and after on the Compare page."
)

# --- 1. choose ------------------------------------------------------------------------------------
st.subheader("1 · Choose a model")
catalogue = bundled()
own, unreadable = [], []
for r in list_runs(root):
    if r.checkpoint("final").exists():
        why = read_config(r)[1]  # a run whose config is unreadable is named, not offered
        if why:
            unreadable.append(why)
        else:
            own.append(str(r.checkpoint("final")))
own += [str(p) for p in sorted(imported_dir().glob("*.safetensors"))]  # saved on the Inspect page
kind = st.radio(
    "From",
    ["bundled models", "my runs"] + ([] if shared() else ["a checkpoint file"]),  # no server paths
    horizontal=True,
    help="bundled: pretrained checkpoints that ship in assets/; my runs: finished runs under the "
    "runs folder",
)
entry, path = None, None
if kind == "bundled models":
    ids = list(catalogue)
    key = st.selectbox(
        "Pretrained model",
        ids,
        index=ids.index(DEFAULT_MODEL) if DEFAULT_MODEL in ids else 0,
        format_func=lambda k: f"{k}: {catalogue[k]['description']}",
    )
    entry = catalogue.get(key)
    path = entry and entry["path"]
elif kind == "my runs":
    if unreadable:
        st.warning("Not offered, unreadable: " + "; ".join(unreadable))
    if not own:
        st.info("No finished runs yet: pre-train one on the Runs page, or use a bundled model.")
    else:
        path = st.selectbox(
            "Finished run or imported model",
            own,
            format_func=lambda p: (
                f"imported / {Path(p).stem}"
                if Path(p).parent == imported_dir()
                else Path(p).parents[1].name
            ),
        )
else:
    path = (
        st.text_input(
            "Checkpoint (.safetensors written by this project)",
            placeholder="/path/to/model.safetensors",
        ).strip()
        or None
    )
if not path:
    st.stop()
try:
    mtime = Path(path).stat().st_mtime
    if entry:
        verify(entry)  # the manifest's hash vouches for the weights
        card = bundled_model_card(entry, mtime)
    else:
        card = model_card(path, mtime)
except (CheckpointError, OSError, KeyError, TypeError, ValueError) as e:  # unreadable or unusable
    st.error(f"This checkpoint cannot be used: {say(e, {'dataset': 'Dataset'}, page='Post-train')}")
    # a model of the user's own: the Inspect page reads it
    if "without this project's metadata" in str(e):
        st.page_link(
            "views/inspect.py",
            label="Open it on the Inspect page: give its architecture there and save it "
            "as a project checkpoint, which this page then offers under my runs",
            icon=":material/biotech:",
        )
    st.stop()
meta = card["meta"]
metrics = meta.get("metrics") or {}
# tensors holding NaN or inf: the recorded accuracy no longer describes them
nonfinite = meta["nonfinite"]
test_acc = metrics.get("test_acc")
c = st.columns(5)
c[0].metric(
    "architecture",
    meta["arch"],
    help=", ".join(f"{k}={v}" for k, v in meta["arch_args"].items()) or None,
)
c[1].metric("parameters", f"{card['parameters']:,}")
c[2].metric("trained on", entry["dataset"] if entry else meta.get("dataset", "?"))
c[3].metric(
    "test accuracy",
    "invalid: NaN/inf weights"
    if nonfinite
    else f"{test_acc:.2%}"
    if isinstance(test_acc, (int, float))
    else "n/a",
)
c[4].metric("classes", meta["num_classes"])
st.caption(
    "Classifier (the layer PoF perturbs; the rest is the feature extractor it trains): "
    f"{card['split']}. "
    + (
        f"Trained with `{entry['command']}` ({entry['train_minutes_2cpu']} min on 2 CPU cores). "
        if entry
        else ""
    )
    + (entry["note"] if entry and entry["note"] else "")
)
if nonfinite:
    st.error(
        f"This checkpoint holds NaN or infinite weights in {len(nonfinite)} tensor"
        f"{'s' if len(nonfinite) > 1 else ''} "
        f"({', '.join(nonfinite[:3])}{' ...' if len(nonfinite) > 3 else ''}): it cannot be "
        "post-trained, and the accuracy recorded when it was trained no longer holds."
    )

# --- dataset: only those that fit -----------------------------------------------------------------
trained_on = meta.get("dataset") or ""
# incl. its image folder
candidates = ([trained_on] if trained_on else []) + [d for d in DATASETS if d != trained_on]
fits = {d: incompatibility(meta, d) for d in candidates}
offered = [d for d, why in fits.items() if why is None]
c1, c2 = st.columns([1, 2])
dataset = c1.selectbox(
    "Dataset",
    [*offered] + ([] if shared() else ["image folder ..."]),
    help="only datasets with the model's input shape and classes are offered",
)
if dataset == "image folder ...":
    folder = c2.text_input(
        "Image folder (train/<class>/*, test/<class>/*)", placeholder="/data/cifar10-jpeg"
    ).strip()
    dataset = f"imagefolder:{Path(folder).expanduser().resolve()}" if folder else None
    why = incompatibility(meta, dataset) if dataset else "give a folder"
    if dataset and why:
        st.error(f"{folder} does not fit this model: {why}.")
        dataset = None
else:
    by_reason: dict[str, list[str]] = {}
    for d, why in fits.items():
        if why:
            by_reason.setdefault(why, []).append(d)
    if by_reason:
        c2.caption(
            "Not offered: "
            + "; ".join(f"{', '.join(ds)} ({why})" for why, ds in by_reason.items())
            + "."
        )
    folder = default_data_root() / dataset
    if dataset in TORCHVISION and not (folder.is_dir() and any(folder.iterdir())):
        st.warning(
            f"{dataset} is not in {folder} yet: the job will download it there, which needs the "
            "network. Offline, copy the files there from another machine or choose an image "
            "folder."
        )

# --- 2. configure ---------------------------------------------------------------------------------
st.subheader("2 · Configure")
pd = PoFConfig()
lr_default, lr_reason = default_post_lr(meta)
# outside the form, so that ticking it shows the tracking fields inside the form at once
track = st.checkbox("Track curvature", help=TRACK_HELP)
with st.form("post-train"):
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox(
        "Method",
        METHODS,
        format_func=lambda m: m,
        help="; ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()),
    )
    epochs = c2.number_input(
        "Epochs", 1, 500, 10, help="post-training epochs; the paper uses 10 (CIFAR) and 50 (SVHN)"
    )
    lr = c3.number_input(
        "Learning rate",
        0.0,
        1.0,
        float(lr_default),
        format="%.6f",
        help=f"default: {lr_reason}, as the paper continues its schedule",
    )
    c1, c2, c3 = st.columns(3)
    weak = c1.number_input(
        "Weak batch size",
        1,
        4096,
        pd.weak_batch_size,
        help="the batch B' whose last-layer gradient g sets the perturbation's direction, and "
        "whose loss along −g its length (paper: 256)",
    )
    gamma = c2.number_input(
        "gamma max",
        0.0,
        10.0,
        pd.gamma_max,
        help="gamma ~ U(0, gamma max) scales the step eta* found by the line search (paper: 2)",
    )
    seed = c3.number_input("Seed", 0, 10_000, 0, help="data order, weak batches and gamma")
    st.caption(METHOD_HELP["pof"] + ". Weak batch and gamma apply to pof and random-direction.")
    tracking = tracking_fields(track)
    start = st.form_submit_button(
        "Start", type="primary", disabled=dataset is None or bool(nonfinite)
    )

if start and dataset and not nonfinite:
    # the job's command is made from the same config the CLI builds, so the app's options are
    # checked by the same rules, before anything starts
    try:
        cfg = PostTrainConfig(
            checkpoint=path,
            dataset=dataset,
            method=method,
            epochs=int(epochs),
            lr=None if lr == float(lr_default) else lr,  # None: the CLI records why it chose it
            pof=PoFConfig(weak_batch_size=int(weak), gamma_max=float(gamma)),
            seed=int(seed),
            tracking=TrackConfig(**tracking),
        )
    except ConfigError as e:
        st.error(f"Not started: {in_field_labels(str(e), FIELD_LABELS)}")
        st.stop()
    source_name = (
        Path(path).parents[1].name
        if kind == "my runs" and Path(path).parent != imported_dir()
        else Path(path).stem
    )
    if refused := job_refusal():
        st.error(refused)
        st.stop()
    target = free_name(root, f"{source_name}-{method}-{seed}")
    args = ["-m", "pof", *config_argv(cfg), "--out", str(target), "--quiet"]
    start_job(target, args, root)
    st.session_state["selected_run"] = str(target)
    st.query_params["run"] = target.name  # a reload of the page keeps watching it

# --- 3. watch -------------------------------------------------------------------------------------
# a name from the URL is confined to root
chosen = st.session_state.get("selected_run") or url_run(root)
if chosen and (Path(chosen) / "status.json").exists():
    st.subheader(f"3 · Watch: {Path(chosen).name}")
    live_status(Run(chosen))
    show_curvature(Run(chosen))
    st.page_link("views/compare.py", label="Compare before and after", icon=":material/compare:")
