"""The measurements, each checked against an exact answer on a model small enough to form the full
Hessian, each reporting its own uncertainty:

    hessian     Hessian-vector products as a curvature operator; Lanczos top eigenvalues, the
                Hutchinson trace and the spectral density
    lastlayer   the last layer's Hessian in closed form, exact on the whole training set
    layers      per-layer sharpness: each parameter block's top eigenvalue and trace
    landscape   loss along filter-normalized directions (1-D, 2-D) and between two checkpoints
    sharpness   other sharpness measures (worst-case, average, adaptive) around the weights
"""
