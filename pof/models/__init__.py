"""Models and checkpoints. A model file becomes a ready (features, classifier) model in one
pipeline, pof.models.loading, whose steps each live in a module of their own:

    formats      what a file is, by its content; the errors every step raises (no torch)
    tensors      its tensors, read safely (safetensors, torch.load(weights_only=True), unwrapped)
    registry     architecture specs: names, sources, arguments (no torch)
    build        an architecture from its spec: registry, torchvision, your code, torch.export
    export       torch.export programs, vetted before they are loaded
    keys         fitting a file's keys to the architecture, or saying which differ
    split        the feature extractor / last linear layer split PoF needs
    networks     the registry's networks
    metadata     a checkpoint's metadata and its checks (no torch)
    checkpoints  writing checkpoints and a run's resume state
    catalogue    the bundled checkpoints and which datasets fit a checkpoint (no torch)

Modules marked "no torch" are read by the app's first page on a cold start.
"""
