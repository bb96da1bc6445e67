"""PoF: Post-Training of Feature Extractor (Sato et al., ICML 2022) and the machinery around it.

The folder is the architecture; each package's docstring maps its modules.

    method/      the method: the PoF step in one unit (pof.py) and SAM (sam.py)
    training/    the epoch loop and its two drivers (pretrain, posttrain), optimizers, evaluation
    models/      a model file to a ready (features, classifier) model: loading.py is that pipeline;
                 the registry's networks, checkpoints and their metadata, the bundled models
    data/        datasets as tensors (one module per source), batches on the device
    runs/        run folders (config, status, metrics, checkpoints) and the job queue

and the small pieces every package shares:

    config       the jobs' configurations (PretrainConfig, PostTrainConfig, PoFConfig), no torch
    options      config fields that make the command-line flags; validate: their checks
    device       where a job runs
    files        the one atomic write, the one file-type check; progress: the one progress/stop
                 protocol; signals: SIGTERM as a cancel
    cli          `python -m pof`
"""

__version__ = "0.1.0"
