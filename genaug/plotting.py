"""Matplotlib figures drawn off-screen (Agg canvas, no pyplot state), for MLflow artifacts."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure with an Agg canvas: it renders without pyplot and needs no closing."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig
