"""PoF: Post-Training of Feature Extractor (Sato et al., ICML 2022) and the machinery around it.

The engine is split into small modules, each readable on its own:
data (datasets and on-device batches), models (registry and feature/classifier split),
checkpoints (safetensors + JSON metadata), catalogue (the bundled checkpoints, which datasets fit),
runs (run folders), jobqueue (one background job at a time), train (training loops), method (the
PoF step), posttrain (PoF and its controls), sam, cli.
"""

__version__ = "0.1.0"
