"""Exports of trained models to other inference engines (optional dependencies)."""

from aiayn.export.ctranslate2 import export_ctranslate2

__all__ = ["export_ctranslate2"]
