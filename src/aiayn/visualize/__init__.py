"""Plots of what a model does (matplotlib is imported only when a plot is made)."""

from aiayn.visualize.attention import cross_attention, plot_attention
from aiayn.visualize.curves import plot_validation_curve, read_metrics

__all__ = ["cross_attention", "plot_attention", "plot_validation_curve", "read_metrics"]
