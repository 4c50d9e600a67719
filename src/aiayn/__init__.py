"""aiayn: the Transformer of "Attention Is All You Need", from first principles, made practical."""

__version__ = "0.1.0"
