"""Figure builders: pure functions, data in, Plotly figure out (testable without a browser); no
Streamlit here. Import each from its module:

- training: loss and accuracy per epoch (one run; several post-training runs)
- spectra: Hessian top eigenvalues, traces and eigenvalue densities
- layers: per-layer sharpness, a table and a figure along the depth of the network
- landscapes: 1-D slices, 3-D surfaces, contour maps, interpolation between two checkpoints
- learn: the Learn page's experiments (decision maps, eigenvector slices, train/test slices, line
  search)
- curvature: curvature over training of one tracked run (λ_max against the stability threshold,
  the last layer's exact top eigenvalue, a layer × time map of per-layer traces) and their captions
- curvature_compare: curvature over time of several runs side by side (each layer's trace over
  epochs, its ratio to the start, λ_max against the stability threshold)
- style: what they share (results read into their types, one colour per label)
"""

from app.figures.curvature_compare import layer_ratio_panels as layer_ratio_panels
from app.figures.curvature_compare import layer_trace_panels as layer_trace_panels
from app.figures.curvature_compare import ratio_heatmaps as ratio_heatmaps
from app.figures.curvature_compare import top_eigenvalue_over_time as top_eigenvalue_over_time
