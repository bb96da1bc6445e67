"""Curvature of a network's loss: what an analysis measures and what a training job records.

operators   Hessian-vector products as a linear operator (whole network, one layer's block)
lanczos     top eigenvalues by Lanczos, residual-checked, warm-startable
trace       Hutchinson's trace with its standard error, every layer's from the same probes
lastlayer   the last linear layer's Hessian in closed form (exact)
results     what they return: frozen results, importable without torch
tracker     curvature over time: a training job's series, point by point
"""
