"""Data: datasets as in-memory tensors and batches on the training device.

names        dataset names, options, shapes and classes, augmentation specs (no torch)
signatures   what a dataset is (shape, classes) without loading it (no torch)
load         load_dataset: one name in, one Dataset out, from whichever source it names
dataset      the Dataset and what every source shares (normalization, label checks)
batches      shuffled, augmented, normalized batches on the device
"""
