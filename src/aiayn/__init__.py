"""aiayn: the Transformer of "Attention Is All You Need", from first principles, made practical."""

__version__ = "0.1.0"


def translate(model, sentences, beam: int = 4, **kwargs):
    """Translate `sentences` with a model directory (or a model plus `tokenizers=`).

    `aiayn.translate("runs/multi30k", ["A man rides a bike."], beam=4)` → list of strings.
    See `aiayn.translator.translate` for every option.
    """
    from aiayn.translator import translate as _translate

    return _translate(model, sentences, beam=beam, **kwargs)
