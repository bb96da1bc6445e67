"""Inspect: any one or two checkpoints (bundled, runs, a path on this server, an upload; the user's
own architectures included), their cards, and per-layer sharpness, Hessian spectra, landscapes and
the interpolation between them, each a background job cached by the checkpoints' content."""

import time
from argparse import ArgumentTypeError
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from analysis.cache import file_digest
from analysis.compare import (
    PAIR_ONLY,
    PARTS,
    ReportConfig,
    Subject,
    comparison_dir,
    labels_for,
    load_results,
    part_dir,
)
from app.classroom import job_refusal, shared, upload_refusal
from app.comparison import (
    PART_TITLES,
    TRACES_ONLY,
    layers_estimate,
    sample_fields,
    show_results,
    traces_only_field,
    watch_parts,
)
from app.crosscheck_view import show_crosscheck
from app.jobs import runs_root, start_job
from app.messages import human_size, say
from app.uploads import (
    MAX_UPLOAD_MB,
    delete_upload,
    free_file,
    imported_dir,
    list_uploads,
    save_upload,
)
from pof.cli import _arch_arg, data_option_argv, model_source_argv
from pof.data.names import DATASETS, SIGNATURES, DatasetError
from pof.hints import marked
from pof.models.catalogue import bundled, incompatibility, verify
from pof.models.formats import CheckpointError, LoadError, ModelSource
from pof.models.loading import data_for, import_checkpoint
from pof.models.metadata import read_metadata
from pof.models.registry import CodeRefused, check_code, runs_user_code
from pof.options import to_argv
from pof.runs.run import Run, list_runs

DEFAULT_PAIR = ("digits-cnn-small-sgd", "digits-cnn-small-sam")
root = runs_root()


st.title("Inspect checkpoints")
st.caption(
    "Choose one checkpoint, or two to compare (a model before and after your own fine-tuning, SGD "
    "vs SAM, "
    "...). Each analysis runs as a background job and is kept, keyed by the files' content, so it "
    "shows at "
    "once next time."
)


# --- choose ---------------------------------------------------------------------------------------


def pick(slot: str, optional: bool) -> str | None:
    kinds = (["none"] if optional else []) + [
        "bundled models",
        "my runs",
        *([] if shared() else ["a path on this server"]),  # shared with a class: no server paths
        "an upload",
    ]
    kind = st.radio(f"Checkpoint {slot} from", kinds, horizontal=True, key=f"{slot}-kind")
    if kind == "none":
        return None
    if kind == "bundled models":
        catalogue = bundled()
        ids = list(catalogue)
        default = DEFAULT_PAIR[
            slot == "B"
        ]  # SGD vs SAM: the contrast a student of flatness wants first
        key = st.selectbox(
            "Bundled model",
            ids,
            key=f"{slot}-bundled",
            index=ids.index(default) if default in ids else 0,
            format_func=lambda k: f"{k}: {catalogue[k]['description']}",
        )
        try:
            verify(catalogue[key])
        except CheckpointError as e:
            st.error(say(e))
            return None
        return catalogue[key]["path"]
    if kind == "my runs":
        checkpoints = [
            str(p)
            for r in list_runs(root)
            if r.path.parent.name != "analysis" and r.config_file.exists()
            for p in (r.checkpoint("initial"), r.checkpoint("final"))
            if p.exists()
        ]
        checkpoints += [str(p) for p in sorted(imported_dir().glob("*.safetensors"))]
        if not checkpoints:
            st.info("No runs with checkpoints yet, and no imported models.")
            return None
        return st.selectbox(
            "Run checkpoint or imported model",
            checkpoints,
            key=f"{slot}-run",
            format_func=lambda p: (
                f"imported / {Path(p).stem}"
                if Path(p).parent == imported_dir()
                else f"{Path(p).parents[1].name} / {Path(p).stem}"
            ),
        )
    if kind == "a path on this server":
        text = st.text_input(
            "Path of the model file", key=f"{slot}-path", placeholder="/path/to/model.pt"
        ).strip()
        if not text:
            return None
        path = Path(text).expanduser()
        if not path.is_file():
            st.error(
                f"No file at {path}. Give the full path of a model file on the machine running "
                "this app."
            )
            return None
        return str(path.resolve())
    return pick_upload(slot)


def pick_upload(slot: str) -> str | None:
    up = st.file_uploader(
        f"Upload a model file (at most {MAX_UPLOAD_MB} MB: safetensors, a state dict or Lightning "
        f"checkpoint, or a torch.export .pt2; pickled objects other than tensors are refused)",
        key=f"{slot}-upload",
    )
    stored = list_uploads()
    if (
        up is not None and st.session_state.get(f"{slot}-file-id") != up.file_id
    ):  # a new upload: store it once
        if refused := upload_refusal(up.name, up.size, sum(n["bytes"] for _, n in stored)):
            st.error(refused)
            return None
        st.session_state[f"{slot}-file-id"] = up.file_id
        st.session_state[f"{slot}-stored"] = str(save_upload(up.name, up.getvalue()))
        stored = list_uploads()
    if not stored:
        return None
    paths = [str(p) for p, _ in stored]
    notes = {str(p): n for p, n in stored}
    if st.session_state.get(f"{slot}-stored") not in paths:
        st.session_state.pop(f"{slot}-stored", None)  # deleted meanwhile
    chosen = st.selectbox(
        "Uploaded file",
        paths,
        key=f"{slot}-stored",
        # the user's own name, size and time: the name it is stored under means nothing to them
        format_func=lambda p: (
            f"{notes[p]['name']} ({human_size(notes[p]['bytes'])}, uploaded "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(notes[p]['uploaded']))})"
        ),
    )
    if st.button("Delete this upload", key=f"{slot}-delete"):
        delete_upload(Path(chosen))
        st.rerun()
    return chosen


c1, c2 = st.columns(2)
with c1:
    path_a = pick("A", optional=False)
with c2:
    path_b = pick("B", optional=True)
if not path_a:
    st.stop()
if path_b and Path(path_b).resolve() == Path(path_a).resolve():
    st.info("A and B are the same file: inspecting it alone.")
    path_b = None
paths = [p for p in (path_a, path_b) if p]


# --- a model of one's own, and the data -----------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def metadata(path: str, digest: str) -> dict | None:
    """The project metadata of a file (cached by its content), or None for a file of another
    origin."""
    try:
        return read_metadata(path)
    except CheckpointError:
        return None


uploaded = {str(p): note["name"] for p, note in list_uploads()}
shown = {
    p: uploaded.get(p, Path(p).name) for p in paths
}  # an upload by the name it was uploaded with
digests = {p: file_digest(p) for p in paths}  # the one cache key of a file: its bytes
metas = {p: metadata(p, digests[p]) for p in paths}
foreign = [p for p, m in metas.items() if m is None]
with st.expander("A model of your own: architecture, classifier, keys", expanded=bool(foreign)):
    if foreign:
        st.caption(
            f"{', '.join(shown[p] for p in foreign)} carries no metadata of this project: say what "
            f"it is. (A torch.export .pt2 carries its architecture: leave the field empty.)"
        )
    f1, f2 = st.columns(2)
    arch = (
        f1.text_input(
            "Architecture",
            key="arch",
            placeholder="torchvision:resnet18",
            help="a registry name (cnn-small, resnet20, mlp, ...), torchvision:NAME (any "
            "torchvision classification model), timm:NAME (any timm model), or your own factory "
            "path/to/file.py:function or package.module:function, a function that returns the "
            "nn.Module",
        ).strip()
        or None
    )
    arch_args = f2.text_input(
        "Its arguments",
        key="arch-args",
        placeholder="num_classes=10, width=16",
        help="KEY=VALUE, comma-separated (JSON values); the number of classes is read off the "
        "weights when not given",
    ).strip()
    f1, f2 = st.columns(2)
    classifier = (
        f1.text_input(
            "Classifier layer",
            key="classifier",
            placeholder="head.fc",
            help="the last linear layer (PoF and the exact last-layer Hessian need it); default: "
            "the model's last nn.Linear",
        ).strip()
        or None
    )
    key_map = f2.text_input(
        "Rename keys",
        key="key-map",
        placeholder="backbone.=features.",
        help="OLD=NEW prefix renames, comma-separated; a prefix shared by all keys (module., "
        "model.) is stripped without it",
    ).strip()
    if runs_user_code(arch):
        try:
            check_code(arch)  # Python's own modules, and in a shared app the teacher's list
        except CodeRefused as e:
            st.error(f"Architecture: {e}")
            st.stop()
    weights_key = (
        f1.text_input(
            "Weights key",
            key="weights-key",
            placeholder="model_state",
            help="the key of a saved dict that holds the weights; needed only when several of "
            "its entries are state dicts that fit the model (the one that fits is found without "
            "it)",
        ).strip()
        or None
    )
    if runs_user_code(arch) and not arch.startswith("export:"):
        st.warning(
            f"Building the model runs your own code ({arch}) on this machine, in the app and in "
            "the job."
        )
    # shared with a class, the teacher's list decides whose code runs, here as everywhere
    allow_code = shared() or st.checkbox(
        "Also run code named inside a checkpoint's metadata",
        key="allow-code",
        help="a checkpoint written by `pof import` from your own factory names that factory; "
        "it is only run when you allow it here",
    )
try:
    source = ModelSource(
        arch,
        dict(_arch_arg(a.strip()) for a in arch_args.split(",") if a.strip()),
        classifier,
        [m.strip() for m in key_map.split(",") if m.strip()],
        weights_key,
    )
except (LoadError, ValueError, ArgumentTypeError) as e:
    st.error(say(e))
    st.stop()

trained_on = [m["dataset"] for m in metas.values() if m and m.get("dataset")]
candidates = list(dict.fromkeys(trained_on + list(DATASETS)))
# as on the Post-train page: a project checkpoint is offered only data of its input shape and
# classes
# (without loading any); a file of other origin learns its shape from the data, checked on its card
why_not = {
    d: next((why for m in metas.values() if m and (why := incompatibility(m, d))), None)
    for d in candidates
}
choices = [d for d in candidates if why_not[d] is None] + (
    [] if shared() else ["a file or folder of my own ..."]  # a path on the server
)
d1, d2, d3, d4 = st.columns([1, 2, 1, 1])
dataset = d1.selectbox(
    "Data",
    choices,
    key=f"dataset-{'|'.join(paths)}",  # a new checkpoint: its own data first
    help="the data the numbers are measured on (default: what the checkpoint was trained on)",
)
if dataset == "a file or folder of my own ...":
    dataset = (
        d2.text_input(
            "npz:PATH, csv:PATH or imagefolder:PATH",
            key="own-data",
            placeholder="csv:/data/flowers.csv",
        ).strip()
        or None
    )
own_names = SIGNATURES.get(dataset, (None, None))[1]  # known without loading the data
classes = d3.text_input(
    "Class order",
    key="classes",
    # the chosen data's own names as the example, never another dataset's
    placeholder=",".join(own_names[:4]) + (",…" if len(own_names) > 4 else "")
    if own_names
    else "names in label order",
    help="class names in label order (default: the data's own; folders: alphabetical)",
).strip()
label_column = (
    d2.text_input("Label column (CSV)", key="label-column").strip()
    if dataset and dataset.startswith("csv:")
    else ""
)
refused = {}
for d, why in why_not.items():
    if why:
        refused.setdefault(why, []).append(d)
if refused:
    st.caption(
        "Not offered: " + "; ".join(f"{', '.join(ds)} ({why})" for why, ds in refused.items()) + "."
    )
if not dataset:
    st.stop()
normalization = d4.text_input(
    "Normalization",
    key="normalization",
    placeholder="0.5 / 0.25",
    help="the mean / std the model's training normalized its inputs with (one per channel, "
    "images in [0, 1] units, or one for all; 'none': inputs as they are; 'auto': computed from "
    "the training split). Default: the data's own. A project checkpoint's recorded one always "
    "applies",
).strip()
stats = {}
if normalization.lower() == "none":
    stats = {"mean": "0", "std": "1"}
elif normalization.lower() == "auto":
    stats = {"mean": "auto", "std": "auto"}
elif normalization:
    mean_text, slash, std_text = normalization.partition("/")
    if not slash or not mean_text.strip() or not std_text.strip():
        st.error("Normalization: give mean / std, e.g. 0.5 / 0.25, or none, or auto.")
        st.stop()
    stats = {"mean": mean_text.strip(), "std": std_text.strip()}
data_options = {
    k: v
    for k, v in (
        ("classes", classes or None),
        ("label_column", label_column or None),
        *stats.items(),
    )
    if v
}


# --- cards ----------------------------------------------------------------------------------------


@st.cache_data(max_entries=32, show_spinner="Reading the checkpoint ...")
def card(
    path: str, digest: str, dataset: str, data_options: dict, source: dict, allow_code: bool
) -> dict:
    """What the checkpoint is, checked against the data (two inputs through it). In the app's
    process: reading a file and one tiny forward; the analyses are jobs."""
    from pof.models.loading import load_checkpoint
    from pof.models.networks import count_parameters
    from pof.training.evaluation import accuracy_within

    try:
        data = data_for(path, dataset, options=data_options)
        model, meta = load_checkpoint(
            path, dataset=data, source=ModelSource(**source), allow_code=allow_code
        )
    except (CheckpointError, DatasetError, ValueError, OSError) as e:
        return {"error": marked(e)}  # worded for this page where it is shown
    # one evaluation pass, held to about a second (the page's own process): a larger test set is
    # measured on a seeded sample of it, with that sample's standard error
    accuracy = None
    if not meta["nonfinite"]:
        accuracy = accuracy_within(model, data.x_test, data.y_test, meta["mean"], meta["std"])
    return {
        "meta": {k: v for k, v in meta.items() if k != "provenance"},
        "provenance": meta.get("provenance") or {},
        "parameters": count_parameters(model),
        "data": data.describe(),
        "data_name": data.name,
        "accuracy": accuracy,
    }


# code named in a file's metadata runs only when allowed, or when this app wrote the file itself
# (Save
# below, after the user typed that code's path): an uploaded file never runs code it names
cards = {
    p: card(
        p,
        digests[p],
        dataset,
        data_options,
        asdict(source),
        allow_code or Path(p).parent == imported_dir(),
    )
    for p in paths
}


def accuracy_text(acc: dict | None, recorded) -> tuple[str, str]:
    """The measured test accuracy (± its standard error when measured on a sample) and its help."""
    if acc is None:
        return "invalid: NaN/inf weights", "no accuracy of NaN or infinite weights means anything"
    whole = acc["n"] == acc["total"]
    value = f"{acc['acc']:.1%}" if whole else f"{acc['acc']:.1%} ± {acc['se']:.1%}"
    how = (
        f"measured on all {acc['total']} test examples"
        if whole
        else f"measured on a seeded sample of {acc['n']} of the {acc['total']} test examples "
        f"(± one standard error; the whole set would take about {acc['seconds_all']:.0f} s)"
    )
    if isinstance(recorded, (int, float)):
        how += f"; recorded in the file: {recorded:.2%}"
    return value, how


def normalization_text(meta: dict) -> str:
    mean, std = meta["mean"], meta["std"]
    if all(m == 0 for m in mean) and all(v == 1 for v in std):
        stats = "none (mean 0, std 1: inputs as they are read)"
    else:
        stats = "mean " + ", ".join(f"{m:.4g}" for m in mean)
        stats += "; std " + ", ".join(f"{v:.4g}" for v in std)
    return f"{stats}, {meta.get('normalization_source', 'recorded in the checkpoint')}"


def show_card(c: dict, name: str) -> None:
    """What the model is and what it does on the data: measured accuracy, the whole architecture,
    the normalization in force, and what was done to the file's keys to load it."""
    meta, prov = c["meta"], c["provenance"]
    cols = st.columns(3)
    cols[0].metric("parameters", f"{c['parameters']:,}")
    cols[1].metric("classes", meta["num_classes"])
    value, how = accuracy_text(c["accuracy"], (meta.get("metrics") or {}).get("test_acc"))
    cols[2].metric("test accuracy (measured)", value, help=how)
    arch = meta["arch"]
    if arch.startswith("export:"):  # its spec holds where the file is stored: say its name
        arch = f"torch.export program {name}"
    args = ", ".join(f"{k}={v}" for k, v in meta["arch_args"].items())
    keys = meta.get("notes") or prov.get("key_notes") or []
    lines = [
        f"- **Architecture:** `{arch}`" + (f" ({args})" if args else ""),
        f"- **Classifier:** `{meta['classifier']}`" if meta["classifier"] else "",
        f"- **Normalization:** {normalization_text(meta)}",
        f"- **Test accuracy:** {how}" if c["accuracy"] else "",
        f"- **Loading:** {'; '.join(keys)}" if keys else "",
    ]
    st.markdown("\n".join(line for line in lines if line))
    acc = c["accuracy"]
    if acc and prov.get("kind") in ("foreign", "imported"):
        from pof.training.evaluation import chance_warning

        warning = chance_warning(acc["acc"], acc["se"], meta["num_classes"], c["data_name"])
        if warning:
            st.warning(say(warning))


for slot, (p, c) in zip("AB"[: len(cards)], cards.items(), strict=True):
    st.markdown(f"**{slot}: {shown[p]}{' (uploaded)' if p in uploaded else ''}**")
    if "error" in c:
        st.error(f"This checkpoint cannot be used: {say(c['error'], names=uploaded)}")
        continue
    meta, prov = c["meta"], c["provenance"]
    show_card(c, shown[p])
    origin = {
        "foreign": f"a {prov.get('format', '')} file of another origin",
        "imported": "imported with `pof import`",
        "post-train": f"post-trained with {prov.get('method')}",
    }
    st.caption(
        f"Split: {say(meta['split'], names=uploaded)}. Numbers recorded in the file: "
        f"{origin.get(prov.get('kind'), 'trained by this project') if prov else 'none'}. Measured "
        "on "
        f"{c['data']}."
    )
    if meta[
        "nonfinite"
    ]:  # the recorded accuracy no longer describes these weights, and no measure means anything
        bad = meta["nonfinite"]
        st.error(
            f"This checkpoint holds NaN or infinite weights in {len(bad)} "
            f"tensor{'s' if len(bad) > 1 else ''} "
            f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): it cannot be analysed."
        )
    for warning in meta.get("warnings", []):
        if not (meta["nonfinite"] and "NaN or infinite" in warning):  # said above, as an error
            st.warning(say(warning, names=uploaded))
    if prov.get("kind") == "foreign" and st.button(
        "Save as a project checkpoint",
        key=f"import-{slot}",
        help="weights and everything said above in one .safetensors "
        "file, listed under 'my runs': next time, no fields",
    ):
        target = free_file(imported_dir(), Path(shown[p]).stem)
        try:
            import_checkpoint(
                p, target, data_for(p, dataset, options=data_options), source, data_options
            )
            st.success(f"Saved {target}; choose it under 'my runs' from now on.")
        except (CheckpointError, DatasetError, ValueError, OSError) as e:
            st.error(f"Not saved: {say(e, names=uploaded)}")
if any("error" in c or c["meta"]["nonfinite"] for c in cards.values()):
    st.stop()  # nothing to compute on a model that cannot be used


# --- what to compute ------------------------------------------------------------------------------

s1, s2, s3 = st.columns([1, 1, 2])
sizes = sample_fields(s1, s2)
offered = [p for p in PARTS if p not in PAIR_ONLY or len(paths) == 2]
wanted = s3.multiselect(
    "Analyses", offered, default=["layers"], format_func=lambda p: PART_TITLES[p], key="parts"
)
traces_only = "layers" in wanted and traces_only_field()
cfg = ReportConfig(**sizes, layer_traces_only=traces_only)
labels = labels_for(paths, [shown[p] for p in paths])
subject = Subject(labels, dataset, data_options, source)


out = comparison_dir(root, subject, cfg)  # named by the files' content, the data, the options
results = load_results(out, paths)  # a part of other content, schema or unreadable: offered again
jobs = {part: Run(part_dir(out, part)) for part in wanted}
missing = [
    part
    for part, job in jobs.items()
    if part not in results and job.status().get("state") not in ("queued", "running")
]


def job_args(part: str) -> list[str]:
    """`python -m analysis compare` for one part, with the page's config as its flags."""
    args = [
        "-m",
        "analysis",
        "compare",
        *paths,
        *[a for label in labels for a in ("--label", label)],
    ]
    args += ["--dataset", dataset, "--part", part, "--out", str(out), *to_argv(cfg), "--quiet"]
    return args + data_option_argv(data_options) + model_source_argv(source)


if "layers" in missing:
    st.caption(
        layers_estimate(
            paths[0],
            digests[paths[0]],
            dataset,
            data_options,
            asdict(source),
            allow_code or Path(paths[0]).parent == imported_dir(),
            cfg,
            len(paths),
            TRACES_ONLY,
        )
    )
if missing and st.button(
    f"Compute {len(missing)} analys{'is' if len(missing) == 1 else 'es'}",
    key="compute",  # one button whatever the settings: a click sent as they change still counts
    type="primary",
    help="each is a background job (they run one after another); the results are kept and show "
    "at once next time",
):
    if refused := job_refusal(len(missing)):
        st.error(refused)
        st.stop()
    for part in missing:
        start_job(jobs[part].path, job_args(part), root)
    st.rerun()


watch_parts(jobs, {part: PART_TITLES[part].capitalize() for part in jobs}, set(results))
series = {part: result for part, result in results.items() if part != "interpolation"}
show_results(series, "inspect", results.get("interpolation"))
show_crosscheck(out, paths, root, job_args)
