"""PoF: Post-Training of Feature Extractor (Sato et al., ICML 2022) and the machinery around it.

The engine is split into small modules, each readable on its own:
    config       the jobs' configurations (PretrainConfig, PostTrainConfig, PoFConfig), no torch
    datasets     dataset names, options and paths, no torch; data: loading them, on-device batches
    models       the architecture registry and the feature/classifier split
    metadata     a checkpoint's metadata and its checks, no torch; checkpoints: safetensors
                 weights + that metadata, and the resume state of a run
    catalogue    the bundled checkpoints, which datasets fit
    runs         run folders (runfiles: reading them safely; runcreate: claiming one; liveness:
                 whether a job's process lives); jobqueue: one background job at a time
    loop         the epoch loop every training job runs on (resume, checkpoints, cancel, DDP)
    pretrain     pre-training (SGD or SAM), a driver of the loop
    posttrain    post-training with PoF or a control, a driver of the loop
    method       the PoF step
    optim        schedules, optimizers and the SGD/SAM steps; sam: the SAM optimizer
    device, evaluation   where a job runs, and a model's loss and accuracy
    options      config fields that make the command-line flags; cli: `python -m pof`
    files, progress      the one atomic write, the one progress/stop protocol
"""

__version__ = "0.1.0"
