"""Measurements on any (model, data): curvature of the last layer and of the whole network,
per-layer sharpness, loss-landscape slices.

    measures/       the estimators, each checked against an exact answer (hessian, lastlayer,
                    layers, landscape, sharpness)
    reports         one function per report; results: their typed results in one file format
    cache           one content-keyed cache; configs: every option declared once
    cli, console    `python -m analysis` (a table of commands) and what it prints on a terminal
    compare         the report jobs the app starts, one run folder per part
    tracking        a run's curvature over time from its saved checkpoints (`analysis track`)
    learn           the Learn page's small experiments; learn_results: their typed results

Imports pof for models, data and checkpoints; never Streamlit or Plotly.
"""
