"""Measurements on any (model, data): curvature of the last layer and of the whole network,
per-layer sharpness, loss-landscape slices (the estimators: analysis.measures, each checked against
an exact answer). One function per report (analysis.reports), typed
results in one file format (analysis.results), one content-keyed cache (analysis.cache), options
declared once (analysis.configs); the CLI (analysis.cli) and the report jobs (analysis.compare) are
thin front ends on them. The Learn page's small experiments are analysis.learn, their typed
results analysis.learn_results. Imports pof for models, data and checkpoints; never Streamlit or
Plotly."""
