"""A model's journey, in one line: from a file someone saved to a ready (features, classifier)
model.

`load_checkpoint` is the one loader behind the CLI, the library and the app, and it reads as the
pipeline it is. Each step is a function below, in order, with a typed result; each refusal is raised
by the step that knows why (a CheckpointError that says what to do).

    1. recognise   what the file is, by its content                      (formats.sniff)
    2. read        its tensors, safely, and this project's metadata      (tensors)
    3. unwrap      the state dict out of the container it was saved in   (tensors.unwrap)
    4. architect   which architecture builds it, from the metadata or the user's words
    5. build       that architecture: registry, torchvision, own code, torch.export   (build)
    6. fit         the file's keys to the model's, then the weights in   (keys)
    7. check       on two inputs of the data: shapes, outputs, finiteness, and the split PoF needs

Nothing here ever runs a pickle of unknown origin: project checkpoints are safetensors, other
torch files are read with torch.load(weights_only=True), export programs are vetted piece by piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data.batches import Batches
from ..data.load import load_dataset
from ..data.names import STATED, short_repr
from ..hints import Said, ask, file_ref, marked
from .build import build
from .checkpoints import save_checkpoint
from .formats import (
    FOREIGN,
    CheckpointError,
    LoadError,
    ModelSource,
    clean,
    refuse_unreadable,
    sniff,
)
from .keys import check_keys, fit_keys
from .metadata import dataset_named, file_sha256, project_meta, require
from .registry import ArchError, runs_user_code
from .split import split_model
from .tensors import read_safetensors, torch_load, unwrap


@dataclass(frozen=True)
class ModelFile:
    """Steps 1-3: a model file read. `meta` is this project's metadata (checked), None for a
    foreign file; `state` is empty for an export program, whose weights come with its graph.
    `found` holds each state dict of a container by its key ("" for the usual places) when there
    is more than that one: step 6 keeps the one that fits; `state` is the largest, to build by."""

    path: Path
    kind: str  # safetensors, torch or export (formats.FOREIGN)
    state: dict[str, torch.Tensor]
    meta: dict | None
    found: dict[str, dict] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        return self.meta is None


@dataclass(frozen=True)
class Architecture:
    """Step 4: what builds the model, and the inputs and classes it is built for."""

    arch: str
    args: dict
    input_shape: tuple[int, ...] | None
    num_classes: int | None


@dataclass(frozen=True)
class Fitted:
    """Step 6: the weights as loaded, and what was done to their keys to fit them."""

    state: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)


def load_checkpoint(
    path: str | Path,
    dataset=None,
    arch: str | None = None,
    arch_args: dict | None = None,
    source: ModelSource | None = None,
    allow_code: bool = True,
) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata) from any model file a user brings.

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
    file = read_model_file(path)  # 1-3
    spec = architecture(file, source, dataset, allow_code)  # 4
    model = build_architecture(file, spec)  # 5
    fitted = fit_weights(file, model, source, spec.arch)  # 6
    meta = describe(file, spec, source, dataset, fitted.notes)
    meta["notes"] = list(fitted.notes)  # what was done to the file's keys, for the caller to say
    meta["normalization_source"] = normalization_source(file, dataset)
    if fitted.state:
        model.load_state_dict(fitted.state)
    check_on_data(model, meta, dataset, file)  # 7
    return model.eval(), meta


# --- 1-3: recognise, read, unwrap ---------------------------------------------------------------


def read_model_file(path: Path) -> ModelFile:
    """The file's kind, its tensors and (for a project checkpoint, checked field by field) its
    metadata. Refuses what is not a model file, TorchScript, and pickles of anything but tensors."""
    kind = sniff(path)
    refuse_unreadable(path, kind)
    if kind == "safetensors":
        state, meta = read_safetensors(path)
        if meta is not None:
            require(meta, path)
        return ModelFile(path, kind, state, meta)
    if kind == "torch":
        found = unwrap(torch_load(str(path), file_ref(path)), file_ref(path))
        return ModelFile(path, kind, max(found.values(), key=len), None, found)
    return ModelFile(path, kind, {}, None)  # export: the weights come with the program


# --- 4: which architecture ------------------------------------------------------------------------


def architecture(
    file: ModelFile, source: ModelSource, dataset, allow_code: bool = True
) -> Architecture:
    """What builds the model: the metadata's architecture for a project checkpoint; for a foreign
    file, the program itself (export) or the one the user names, with the dataset's shapes."""
    path, meta = file.path, file.meta
    if not file.foreign:
        if runs_user_code(meta["arch"]) and not allow_code:
            raise CheckpointError(
                f"{file_ref(path)} is built by code named in its metadata ({meta['arch']}); it is "
                "only run when you load the file yourself from the command line or allow it."
            )
        return Architecture(
            meta["arch"], meta["arch_args"], meta["input_shape"], meta["num_classes"]
        )
    if dataset is None:
        raise CheckpointError(
            f"{file_ref(path)} is a {FOREIGN[file.kind]} without this project's metadata: give the "
            f"dataset it was trained on ({ask('dataset')}) for its input shape, normalization and "
            "classes."
        )
    if file.kind == "export":
        arch = f"export:{path.resolve()}"
    elif not source.arch:
        raise CheckpointError(
            f"{file_ref(path)} holds weights only: give its architecture with {ask('arch')} (a "
            "registry name, torchvision:NAME, timm:NAME, path/to/file.py:function or "
            "package.module:function)."
        )
    else:
        arch = source.arch
    return Architecture(arch, dict(source.arch_args), dataset.input_shape, dataset.num_classes)


# --- 5: build -------------------------------------------------------------------------------------


def build_architecture(file: ModelFile, spec: Architecture) -> nn.Module:
    """An untrained model of the architecture, refused with the file named when it cannot be built
    (or when the export program a checkpoint was written from has changed since)."""
    path = file.path
    try:
        model = build(
            spec.arch,
            spec.args,
            input_shape=spec.input_shape,
            num_classes=spec.num_classes,
            state=file.state,
        )
    except (ArchError, LoadError) as e:
        raise CheckpointError(f"{file_ref(path)}: {marked(e)}") from e
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as e:
        # arguments that pass the architecture's signature but not its layers (width=-1, ...)
        raise CheckpointError(
            f"{file_ref(path)}: cannot build {spec.arch} with {short_repr(spec.args)}: {clean(e)}. "
            f"Check the architecture arguments ({ask('arch_args')})."
        ) from e
    program = (file.meta or {}).get("program_sha256")
    if program and file_sha256(spec.arch.split(":", 1)[1]) != program:
        raise CheckpointError(
            f"{file_ref(path)}: the program {spec.arch} has changed since the checkpoint was "
            "written."
        )
    return model


# --- 6: fit the keys ------------------------------------------------------------------------------


def fit_weights(file: ModelFile, model: nn.Module, source: ModelSource, arch: str) -> Fitted:
    """The file's weights with keys that fit the model: a foreign state dict gets the user's renames
    and loses a shared prefix; then every key and shape is checked (the error pairs the keys).
    Of a container's several state dicts, the one that fits (or the one the user names)."""
    what = file_ref(file.path)
    if not file.state:
        return Fitted({})
    if not file.foreign:
        return Fitted(check_keys(file.state, model, what, arch))
    found = file.found or {"": file.state}
    if source.weights_key is not None:
        if source.weights_key not in found:
            raise LoadError(
                f"{what} has no state dict under {source.weights_key!r}; it has "
                f"{_keys(found)}. Name one of those with {ask('weights_key')}."
            )
        found = {source.weights_key: found[source.weights_key]}
    fits, refused = {}, {}
    for key, state in found.items():
        try:
            fitted, notes = fit_keys(state, model, source.key_map)
            notes = ([f"read the weights under the key {key!r}"] if key else []) + notes
            fits[key] = Fitted(check_keys(fitted, model, what, arch), notes)
        except LoadError as e:
            refused[key] = e
    if len(fits) == 1:
        return next(iter(fits.values()))
    if fits:
        raise LoadError(
            f"{what} holds several state dicts that fit {arch}, under {_keys(fits)}: name the one "
            f"to use with {ask('weights_key', next(iter(fits)))}."
        )
    if len(refused) == 1:
        raise next(iter(refused.values()))
    key = max(refused, key=lambda k: len(found[k]))  # the likeliest: the most tensors
    raise LoadError(
        f"{what} holds state dicts under {_keys(found)} and none fits {arch}. Under {key!r}: "
        f"{marked(refused[key])}"
    )


def _keys(found: dict) -> str:
    return ", ".join(repr(k) for k in found)


def describe(
    file: ModelFile, spec: Architecture, source: ModelSource, dataset, notes: list[str]
) -> dict:
    """The metadata of the loaded model: a project checkpoint's own, or, for a foreign file, what
    the dataset and the user said (provenance records the file, its format and hash)."""
    if not file.foreign:
        return {**file.meta, "classifier": source.classifier or file.meta.get("classifier")}
    meta = {
        "arch": spec.arch,
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
            "file": str(file.path),
            "format": file.kind,
            "sha256": file_sha256(file.path),
            "key_notes": notes,
        },
        "classifier": source.classifier,
    }
    if file.kind == "export":
        meta["program_sha256"] = meta["provenance"]["sha256"]
    return meta


def normalization_source(file: ModelFile, dataset) -> str:
    """Where the mean and std the inputs are normalized with come from."""
    if not file.foreign:
        return "recorded in the checkpoint"
    how = getattr(dataset, "normalization", "")
    if how == STATED:
        return "stated by you"
    return f"the data's default ({how})" if how else "the data's default"


# --- 7: check on the data, and split --------------------------------------------------------------


def check_on_data(model: nn.Module, meta: dict, dataset, file: ModelFile) -> None:
    """With a dataset: refuse one the model was not made for, and run two of its inputs through
    it. Always: note tensors that are not finite, and record the feature/classifier split (in
    meta["classifier"] and meta["split"]) or why there is none. Warnings go to meta["warnings"]."""
    meta["warnings"] = check_dataset(meta, dataset, file.foreign) if dataset is not None else []
    example = probe(model, meta, dataset, file.path) if dataset is not None else None
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
    if file.kind == "export" or meta["arch"].startswith("export:"):  # a program, or imported one
        meta["classifier"], meta["split"] = None, EXPORT_SPLIT
        if getattr(model, "fixed_batch", None) and "provenance" in meta:
            meta["provenance"]["fixed_batch"] = model.fixed_batch  # run in chunks of it
        return
    try:
        split = split_model(model, example, classifier=meta.get("classifier"))
        meta["classifier"], meta["split"] = split.classifier_name, split.describe()
    except ValueError as e:
        meta["classifier"], meta["split"] = (
            None,
            Said(
                f"no usable last layer: {marked(e)} Every analysis but PoF and the exact "
                f"last-layer Hessian works."
            ),
        )


# what an export program can do; messages name no command-line flag (the app shows them too)
EXPORT_SPLIT = (
    "an exported program is a fixed graph: its weights cannot be trained and its last layer "
    "cannot be split off, so PoF (which trains the feature extractor under a perturbed last "
    "layer) and the exact last-layer Hessian cannot run on it. Evaluation and every other "
    "analysis (Hessian, per-layer, landscape, sharpness) work. To post-train, save the weights "
    "instead (model.state_dict() with torch.save, or a safetensors file) and load them with the "
    "model's class or factory, or as a registry, torchvision or timm architecture."
)


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
            f"{ask('classes', ','.join(names))}."
        )
    if (not names or foreign) and order == "alphabetical":
        return [
            Said(
                f"The class order of {dataset.name} comes only from sorting its names "
                f"alphabetically ({', '.join(dataset.classes[:5])}"
                f"{', ...' if dataset.num_classes > 5 else ''}),"
                " and the model records none. If the model was trained with another order, every "
                f"number will be wrong: state it with {ask('classes')}."
            )
        ]
    return []


def probe(model: nn.Module, meta: dict, dataset, path: Path) -> torch.Tensor:
    """Two test inputs through the model: the input shape and the number of outputs are checked
    here, before any work starts, instead of deep inside a job."""
    x = Batches(
        dataset.x_test[:2], dataset.y_test[:2], meta["mean"], meta["std"], 2, shuffle=False
    ).normalize(dataset.x_test[:2])
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as e:
        raise CheckpointError(
            f"{file_ref(path)} ({meta['arch']}) cannot take the inputs of {dataset.name} "
            f"(shape {tuple(x.shape[1:])}): {clean(e)}"
        ) from e
    if not isinstance(out, torch.Tensor) or out.shape != (2, dataset.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(
            f"{file_ref(path)} ({meta['arch']}) returns {shape} for a batch of 2; a classifier of "
            f"{dataset.name} must return (2, {dataset.num_classes}) logits."
        )
    return x


# --- around the pipeline: the data a checkpoint is measured on, importing a foreign file -------


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
    kind, meta = project_meta(Path(path))  # read once, for the name and the recorded options
    name = name or dataset_named(Path(path), kind, meta)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if meta and meta.get("dataset") == name:
        recorded = {k: v for k, v in (meta.get("data_options") or {}).items() if v is not None}
        if name.startswith(USER_DATA) and meta.get("class_names"):
            recorded.setdefault("classes", list(meta["class_names"]))
        options = {**recorded, **options}
    return load_dataset(name, root, svhn_extra=svhn_extra, **options)


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
        raise CheckpointError(
            f"{file_ref(out)}: a project checkpoint is a .safetensors file; name it so."
        )
    if out.exists() and not overwrite:
        raise CheckpointError(
            f"{file_ref(out)} exists; give {ask('overwrite')} to replace it, or another "
            f"{ask('out')}."
        )
    model, meta = load_checkpoint(path, dataset=dataset, source=source)
    meta["provenance"] = {**meta["provenance"], "kind": "imported"}
    meta["data_options"] = {
        **{k: v for k, v in (data_options or {}).items() if v is not None},
        **getattr(dataset, "options", {}),  # the loader's choices (a CSV's drawn split)
    }
    save_checkpoint(out, model, meta)
    return meta
