"""Regenerate the bundled pretrained checkpoints in assets/ and their manifest.

    python assets/make_assets.py                       # the offline ones (about a minute)
    python assets/make_assets.py --only cifar10-cnn-small --cifar-root /tmp/cifar10-jpeg

Each entry is trained with the project's own `python -m pof pretrain` in a run folder under
--work; its final checkpoint is copied here and described in manifest.json (architecture,
dataset, the exact command, test accuracy, size, sha256). Entries not rebuilt keep their record.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pof.models.checkpoints import write_safetensors
from pof.models.metadata import file_sha256
from pof.models.networks import build_model, count_parameters
from pof.models.tensors import read_safetensors

HERE = Path(__file__).resolve().parent

CIFAR_NOTE = (
    "Trained on CIFAR-10 as a JPEG image folder (all 60,000 images re-encoded as JPEG, "
    "train/<class>/*.jpg and test/<class>/*.jpg), not on torchvision's binary release: JPEG "
    "changes pixels slightly, so accuracy on the original CIFAR-10 test set can differ by a point "
    "or so. Use it with the torchvision dataset cifar10 (needs the network once) or with "
    "imagefolder:PATH on such a folder."
)

# id -> (pretrain arguments, dataset name recorded for users, description, note)
ENTRIES = {
    "digits-cnn-small-sgd": (
        ["--model", "cnn-small", "--dataset", "digits", "--epochs", "30", "--optimizer", "sgd"],
        "digits",
        "cnn-small on scikit-learn digits (8x8), Nesterov SGD, 30 epochs",
        "",
    ),
    "digits-cnn-small-sam": (
        [
            "--model",
            "cnn-small",
            "--dataset",
            "digits",
            "--epochs",
            "30",
            "--optimizer",
            "sam",
            "--rho",
            "0.05",
        ],
        "digits",
        "cnn-small on scikit-learn digits (8x8), SAM (rho 0.05) around Nesterov SGD, 30 epochs",
        "",
    ),
    "moons-mlp": (
        ["--model", "mlp", "--dataset", "moons", "--epochs", "60", "--optimizer", "sgd"],
        "moons",
        "MLP (2-64-64-2) on the two-moons point set, Nesterov SGD, 60 epochs",
        "",
    ),
    "cifar10-cnn-small": (
        ["--model", "cnn-small", "--epochs", "40", "--batch-size", "128", "--optimizer", "sgd"],
        "cifar10",
        "cnn-small (width 32) on CIFAR-10, Nesterov SGD, 40 epochs, crop+flip",
        CIFAR_NOTE,
    ),
}
OFFLINE_IDS = ["digits-cnn-small-sgd", "digits-cnn-small-sam", "moons-mlp"]


def build(entry_id: str, work: Path, cifar_root: str | None) -> dict:
    args, dataset_name, description, note = ENTRIES[entry_id]
    if entry_id.startswith("cifar10"):
        if not cifar_root:
            sys.exit(
                "cifar10-cnn-small needs --cifar-root: a CIFAR-10 image folder (train/<class>/*, "
                "test/<class>/*)."
            )
        args = [*args, "--dataset", f"imagefolder:{Path(cifar_root).resolve()}"]
    run_dir = work / entry_id
    cmd = [
        sys.executable,
        "-m",
        "pof",
        "pretrain",
        *args,
        "--out",
        str(run_dir),
        "--overwrite",
        "--quiet",
    ]
    print("+", " ".join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=HERE.parent)
    minutes = (time.time() - start) / 60

    state, meta = read_safetensors(run_dir / "checkpoints" / "final.safetensors")
    trained_on = meta["dataset"]
    meta["dataset"] = dataset_name  # the name users load; an image-folder path is machine-specific
    meta["provenance"] = {
        **meta["provenance"],
        "run": f"assets/make_assets.py {entry_id}",
        "trained_on": trained_on if trained_on == dataset_name else "CIFAR-10 JPEG image folder",
    }
    target = HERE / f"{entry_id}.safetensors"
    write_safetensors(state, meta, target)
    model = build_model(meta["arch"], meta["input_shape"], meta["num_classes"], **meta["arch_args"])
    shown = (
        args[:-2] if entry_id.startswith("cifar10") else args
    )  # without the machine-specific path
    return {
        "file": target.name,
        "description": description,
        "arch": meta["arch"],
        "arch_args": meta["arch_args"],
        "parameters": count_parameters(model),
        "dataset": dataset_name,
        "num_classes": meta["num_classes"],
        "input_shape": meta["input_shape"],
        "classifier": "classifier (the last nn.Linear)",
        "test_acc": meta["metrics"].get("test_acc"),
        "test_loss": meta["metrics"].get("test_loss"),
        "train_acc": meta["metrics"].get("train_acc"),
        "command": "python -m pof pretrain "
        + " ".join(shown)
        + (" --dataset imagefolder:CIFAR_JPEG_ROOT" if entry_id.startswith("cifar10") else ""),
        "train_minutes_2cpu": round(minutes, 1),
        "note": note,
        "bytes": target.stat().st_size,
        "sha256": file_sha256(target),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(ENTRIES),
        help="entries to rebuild (default: the offline ones)",
    )
    p.add_argument("--cifar-root", help="the unzipped CIFAR-10 JPEG folder (train/, test/)")
    p.add_argument(
        "--work",
        default=os.environ.get("TMPDIR", "/tmp") + "/pof-assets",
        help="where the training run folders go",
    )
    a = p.parse_args()
    manifest_path = HERE / "manifest.json"
    for entry_id in a.only or OFFLINE_IDS:
        record = build(entry_id, Path(a.work), a.cifar_root)
        # read just before writing: another invocation may have rebuilt other entries meanwhile
        manifest = (
            json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
        )
        manifest["models"][entry_id] = record
        manifest["models"] = dict(sorted(manifest["models"].items()))
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, manifest_path)
        print(
            f"{entry_id}: test accuracy {manifest['models'][entry_id]['test_acc']:.4f}", flush=True
        )


if __name__ == "__main__":
    main()
