"""Data: datasets as in-memory tensors and batches on the training device.

names        dataset names, options, shapes and classes, augmentation specs (no torch)
signatures   what a dataset is (shape, classes) without loading it (no torch)
load         load_dataset: one name in, one Dataset out, from whichever source it names
dataset      the Dataset and what every source shares (normalization, label checks)
offline      scikit-learn's digits and the synthetic 2-D point sets (no download)
downloads    the torchvision datasets, downloaded into the data folder
imagefolder  image folders, decoded once and cached
arrays       the user's own npz/safetensors arrays
table        the user's own CSV files
batches      shuffled, augmented, normalized batches on the device
"""
