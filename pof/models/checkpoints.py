"""Checkpoints: safetensors weights plus JSON metadata that says how to rebuild the model.

`load_checkpoint` is the one loader behind the CLI, the library and the app: project checkpoints,
and whatever a user brings (pof.loading reads the file by its content; pof.archs builds the
architecture it names). Nothing here ever runs a pickle of unknown origin.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .. import __version__
from ..data.names import short_repr
from ..files import replacing
from . import registry as archs
from .formats import (
    CheckpointError,
    LoadError,
    ModelSource,
    check_keys,
    clean,
    fit_keys,
    read_state,
)
from .metadata import (
    FOREIGN,
    FORMAT,
    META_KEY,
    TRANSIENT,
    dataset_named,
    file_sha256,
    parse_metadata,
    project_meta,
    require,
    unreadable,
)
from .networks import split_model


def write_safetensors(tensors: dict, metadata: dict, path: Path) -> None:
    """Tensors plus JSON metadata, replacing `path` atomically (pof.files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={META_KEY: json.dumps(metadata)},
        )


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write the model's state dict and `meta` (arch, arch_args, num_classes, input_shape, mean,
    std, dataset, class_names, metrics, provenance); format and version are added here."""
    path = Path(path)
    meta = {k: v for k, v in meta.items() if k not in TRANSIENT}
    write_safetensors(model.state_dict(), {**meta, "format": FORMAT, "version": __version__}, path)
    return path


# --- resume state: model and optimizer of the last finished epoch, in one file ------------------


def save_resume_state(path: Path, model: nn.Module, optimizer, epoch: int, best_acc: float) -> None:
    """Model and optimizer state in one file, so a kill can never leave them out of step: tensors
    under "model.NAME" and "optim.INDEX.NAME", the optimizer's other values in the metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    sd = optimizer.state_dict()
    scalars = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    meta = {
        "epoch": epoch,
        "best_acc": best_acc,
        "param_groups": sd["param_groups"],
        "scalars": scalars,
    }
    write_safetensors(tensors, meta, path)


def load_resume_state(path: Path, model: nn.Module, optimizer) -> tuple[int, float]:
    """Load what save_resume_state wrote into `model` and `optimizer`; returns (epoch, best_acc)."""
    tensors, meta = read_safetensors(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            idx, _, name = k[6:].partition(".")
            state.setdefault(int(idx), {})[name] = v
    for k, v in meta["scalars"].items():
        idx, _, name = k.partition(".")
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["epoch"]), float(meta["best_acc"])


def read_safetensors(path: Path) -> tuple[dict, dict | None]:
    """A safetensors file's tensors and its project metadata (None when it has none)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            names = f.keys()  # a list: the handle itself is not iterable
            state = {k: f.get_tensor(k) for k in names}
    except Exception as e:
        raise unreadable(path, e) from e
    return state, parse_metadata(raw, path)


# data whose class order is the user's, not a registry's
USER_DATA = ("npz:", "csv:", "imagefolder:")


def data_for(
    path: str | Path,
    name: str | None = None,
    root=None,
    options: dict | None = None,
    svhn_extra: bool = False,
):
    """The dataset to measure a checkpoint on: `name`, else the one its metadata names. Its data
    options (label column, class order ...) are those it was imported or trained with, unless
    `options` states others; the user's own data keeps the class order the checkpoint recorded."""
    from ..data.load import load_dataset

    kind, meta = project_meta(Path(path))  # read once, for the name and the recorded options
    name = name or dataset_named(Path(path), kind, meta)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if meta and meta.get("dataset") == name:
        recorded = {k: v for k, v in (meta.get("data_options") or {}).items() if v is not None}
        if name.startswith(USER_DATA) and meta.get("class_names"):
            recorded.setdefault("classes", list(meta["class_names"]))
        options = {**recorded, **options}
    return load_dataset(name, root, svhn_extra=svhn_extra, **options)


def check_dataset(meta: dict, dataset, foreign: bool = False) -> list[str]:
    """Refuse a dataset whose classes or input shape differ from what the checkpoint was trained
    for; returns warnings about a class order that cannot be checked (a `foreign` model's class
    names are the dataset's own, so they cannot vouch for its order)."""
    if meta["num_classes"] != dataset.num_classes:
        raise CheckpointError(
            f"The checkpoint has {meta['num_classes']} output classes but {dataset.name} has "
            f"{dataset.num_classes}. Pick the dataset it was trained on "
            f"({meta.get('dataset', 'unknown')})."
        )
    if tuple(meta["input_shape"]) != tuple(dataset.input_shape):
        raise CheckpointError(
            f"The checkpoint expects inputs of shape {tuple(meta['input_shape'])} but "
            f"{dataset.name} has {tuple(dataset.input_shape)}. Pick the dataset it was trained "
            f"on ({meta.get('dataset', 'unknown')})."
        )
    names, order = meta.get("class_names"), getattr(dataset, "class_order", "")
    if names and list(names) != list(dataset.classes) and sorted(names) == sorted(dataset.classes):
        raise CheckpointError(
            f"{dataset.name} has the checkpoint's classes in another order "
            f"({', '.join(dataset.classes[:4])}, ... vs {', '.join(names[:4])}, ...): every "
            f"label would be read as another class. State the order with "
            f"--classes {','.join(names)}."
        )
    if (not names or foreign) and order == "alphabetical":
        return [
            f"The class order of {dataset.name} comes only from sorting its names alphabetically "
            f"({', '.join(dataset.classes[:5])}{', ...' if dataset.num_classes > 5 else ''}), "
            f"and the model records none. If the model was trained with another order, every "
            f"number will be wrong: state it "
            f"with --classes."
        ]
    return []


def _probe(model: nn.Module, meta: dict, dataset, path: Path) -> torch.Tensor:
    """Two test inputs through the model: the input shape and the number of outputs are checked
    here, before any work starts, instead of deep inside a job."""
    from ..data.batches import Batches

    x = Batches(
        dataset.x_test[:2], dataset.y_test[:2], meta["mean"], meta["std"], 2, shuffle=False
    ).normalize(dataset.x_test[:2])
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as e:
        raise CheckpointError(
            f"{path} ({meta['arch']}) cannot take the inputs of {dataset.name} "
            f"(shape {tuple(x.shape[1:])}): {clean(e)}"
        ) from e
    if not isinstance(out, torch.Tensor) or out.shape != (2, dataset.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(
            f"{path} ({meta['arch']}) returns {shape} for a batch of 2; a classifier of "
            f"{dataset.name} must return (2, {dataset.num_classes}) logits."
        )
    return x


def _foreign_meta(
    path: Path, kind: str, arch: str, source: ModelSource, dataset, notes: list[str]
) -> dict:
    return {
        "arch": arch,
        "arch_args": dict(source.arch_args),
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.input_shape),
        "mean": list(dataset.mean),
        "std": list(dataset.std),
        "dataset": dataset.name,
        "class_names": list(dataset.classes),
        "class_order": getattr(dataset, "class_order", ""),
        "metrics": {},
        "provenance": {
            "kind": "foreign",
            "file": str(path),
            "format": kind,
            "sha256": file_sha256(path),
            "key_notes": notes,
        },
    }


def _build(
    arch: str,
    meta_or_args: dict,
    state: dict | None,
    path: Path,
    input_shape=None,
    num_classes=None,
):
    try:
        return archs.build(
            arch, meta_or_args, input_shape=input_shape, num_classes=num_classes, state=state
        )
    except (archs.ArchError, LoadError) as e:
        raise CheckpointError(f"{path}: {e}") from e
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as e:
        # arguments that pass the architecture's signature but not its layers (width=-1, ...)
        raise CheckpointError(
            f"{path}: cannot build {arch} with {short_repr(meta_or_args)}: {clean(e)}. Check the "
            f"architecture arguments (--arch-arg)."
        ) from e


def load_checkpoint(
    path: str | Path,
    dataset=None,
    arch: str | None = None,
    arch_args: dict | None = None,
    source: ModelSource | None = None,
    allow_code: bool = True,
) -> tuple[nn.Module, dict]:
    """The one loader: (model in eval mode, metadata) from any model file a user brings.

    Project checkpoints carry everything. Foreign files (state dicts in any common container,
    safetensors without metadata, torch.export programs) need `dataset` (input shape,
    normalization, classes) and, except programs, an architecture (`arch` or `source.arch`). With
    a dataset, two of its inputs go through the model to check it fits. `metadata["classifier"]`
    names the last layer PoF perturbs (None when the model has none it can use, with the reason in
    `metadata["split"]`); `metadata["warnings"]` holds what the caller must show. With
    allow_code=False, an architecture that runs code named inside the file is refused.
    """
    path = Path(path)
    source = source or ModelSource(arch, dict(arch_args or {}))
    kind, state, meta = read_state(path)
    foreign = meta is None
    if not foreign:
        require(meta, path)
        if archs.runs_user_code(meta["arch"]) and not allow_code:
            raise CheckpointError(
                f"{path} is built by code named in its metadata ({meta['arch']}); it is only "
                f"run when you load the file yourself from the command line or allow it."
            )
        model = _build(
            meta["arch"], meta["arch_args"], state, path, meta["input_shape"], meta["num_classes"]
        )
        if (
            meta.get("program_sha256")
            and file_sha256(meta["arch"].split(":", 1)[1]) != meta["program_sha256"]
        ):
            raise CheckpointError(
                f"{path}: the program {meta['arch']} has changed since the checkpoint was written."
            )
        meta = {**meta, "classifier": source.classifier or meta.get("classifier")}
    else:
        if dataset is None:
            raise CheckpointError(
                f"{path} is a {FOREIGN[kind]} without this project's metadata: give the dataset "
                f"it was trained on (--dataset) for its input shape, normalization and classes."
            )
        if kind == "export":
            arch = f"export:{path.resolve()}"
        elif not source.arch:
            raise CheckpointError(
                f"{path} holds weights only: give its architecture with --arch (a registry name, "
                f"torchvision:NAME, path/to/file.py:function or package.module:function)."
            )
        else:
            arch = source.arch
        model = _build(
            arch, source.arch_args, state, path, dataset.input_shape, dataset.num_classes
        )
        state, notes = fit_keys(state, model, source.key_map) if kind != "export" else (state, [])
        meta = _foreign_meta(path, kind, arch, source, dataset, notes)
        meta["classifier"] = source.classifier
        if kind == "export":
            meta["program_sha256"] = meta["provenance"]["sha256"]
    if state:
        model.load_state_dict(check_keys(state, model, str(path), meta["arch"]))
    meta["warnings"] = check_dataset(meta, dataset, foreign) if dataset is not None else []
    example = _probe(model, meta, dataset, path) if dataset is not None else None
    bad = [
        n
        for n, t in model.state_dict().items()
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        meta["warnings"].append(
            f"{len(bad)} tensors hold NaN or infinite values ({', '.join(bad[:3])}); "
            f"losses and curvature of this model are meaningless."
        )
    meta["nonfinite"] = bad
    _describe_split(model, meta, example)
    return model.eval(), meta


def _describe_split(model: nn.Module, meta: dict, example) -> None:
    """Record which layer is the classifier (and how it was found), or why there is none."""
    try:
        split = split_model(model, example, classifier=meta.get("classifier"))
        meta["classifier"], meta["split"] = split.classifier_name, split.describe()
    except ValueError as e:
        meta["classifier"], meta["split"] = (
            None,
            (
                f"no usable last layer: {e} Every analysis but PoF and the exact "
                f"last-layer Hessian works; name the layer with --classifier."
            ),
        )


def import_checkpoint(
    path: str | Path,
    out: str | Path,
    dataset,
    source: ModelSource | None = None,
    data_options: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Write any model file a user brings as a project checkpoint (weights + full metadata), so that
    every command and the app take it without --arch or --dataset; returns its metadata."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"{out}: a project checkpoint is a .safetensors file; name it so.")
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} exists; give --overwrite to replace it, or another --out.")
    model, meta = load_checkpoint(path, dataset=dataset, source=source)
    meta["provenance"] = {**meta["provenance"], "kind": "imported"}
    meta["data_options"] = {k: v for k, v in (data_options or {}).items() if v is not None}
    save_checkpoint(out, model, meta)
    return meta
