"""Measurements on any (model, data): curvature of the last layer and of the whole network,
loss-landscape slices. Imports pof for models, data and checkpoints; never Streamlit or Plotly."""
