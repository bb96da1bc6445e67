"""torch on one thread in the app's own process, set when a page first imports torch.

The app's own work is light (metadata, probes, the Learn page's tiny networks). With torch's default
of one thread per core it fought a running job for the 2 cores and took 6-25x longer; one thread
costs it nothing measurable when idle (benchmarks/RESULTS.md, Learn page). The pages import torch
only when they need it (the first page does not), so the setting is made by an import hook the
moment torch arrives. Nothing is put in the environment: jobs are separate processes (app/jobs.py)
and keep all their threads.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


class _OneThreadOnImport(importlib.abc.MetaPathFinder):
    """Finds torch once, as the next finder would, and sets its threads when it has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # its work is done; find torch's own spec without it
        spec = importlib.util.find_spec("torch")
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.set_num_threads(1)

        spec.loader.exec_module = exec_module  # this import's loader only
        return spec


def one_torch_thread() -> None:
    """torch runs on one thread in this process: now if it is imported, else once it is."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    elif not any(isinstance(f, _OneThreadOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OneThreadOnImport())
