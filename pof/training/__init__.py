"""Training: the epoch loop every job runs on (resume, checkpoints, cancel, DDP), the two drivers
that run it (pretrain: SGD or SAM; posttrain: PoF or a control), optimizers and schedules, and a
model's loss and accuracy.
"""
