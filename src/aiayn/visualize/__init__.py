"""Plots of what a model does (matplotlib is imported only when a plot is made)."""

from aiayn.visualize.attention import cross_attention, plot_attention, plot_attention_grid
from aiayn.visualize.curves import plot_validation_curve, read_metrics
from aiayn.visualize.rollout import attention_rollout, plot_rollout

__all__ = [
    "attention_rollout",
    "cross_attention",
    "plot_attention",
    "plot_attention_grid",
    "plot_rollout",
    "plot_validation_curve",
    "read_metrics",
]
