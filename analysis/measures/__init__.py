"""The measurements, each checked against an exact answer on a model small enough to form the full
Hessian, each reporting its own uncertainty:

    hessian     the curvature core of pof.curvature (Hessian-vector products as an operator,
                Lanczos top eigenvalues, the Hutchinson trace), each layer's top eigenvalue and
                the spectral density; the last layer's closed form is pof.curvature.lastlayer
    layers      per-layer sharpness: each parameter block's top eigenvalue and trace
    landscape   loss along filter-normalized directions (1-D, 2-D) and between two checkpoints
    sharpness   other sharpness measures (worst-case, average, adaptive) around the weights
"""
