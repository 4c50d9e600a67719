"""Plots of what a model does (matplotlib is imported only when a plot is made)."""

from aiayn.visualize.attention import cross_attention, plot_attention

__all__ = ["cross_attention", "plot_attention"]
