"""Import timm where its torchvision cannot load (a CPU-only torch build).

timm imports torchvision at import time for models and transforms that a ViT never uses. PyPI's
torchvision wheels are built against PyPI's CUDA torch; beside the CPU-only torch this project
installs where there is no GPU, torchvision's compiled operators fail to load and
`import torchvision` raises, taking `import timm` with it. `import_timm` then imports timm
with an inert stand-in for torchvision: every name under `torchvision.*` resolves to a
placeholder class that does nothing. timm's VisionTransformer does not touch it; anything
that does (timm's data transforms, torchvision's models) would fail loudly, not silently.
Where torchvision loads, this is plain `import timm`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _InertMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        # a distinct placeholder per name (enum members used as dict keys stay distinct)
        sub = _InertMeta(name, (cls,), {})
        setattr(cls, name, sub)
        return sub


class _Inert(metaclass=_InertMeta):
    """Any torchvision name: a placeholder class whose attributes are placeholders too."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("torchvision is a stand-in here (see benchmarks/timm_import.py)")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []  # a package: submodules resolve through this finder too
        module.__getattr__ = lambda name: getattr(_Inert, name)  # PEP 562
        return module

    def exec_module(self, module) -> None:
        pass


def import_timm():
    """The timm module (see the module docstring); ImportError when timm is not installed."""
    try:
        import timm

        return timm
    except ImportError as err:
        if "timm" in str(err) and "torchvision" not in str(err):
            raise
    except RuntimeError:  # torchvision's operators failed to register
        pass
    for name in [n for n in sys.modules if n.split(".")[0] in ("timm", "torchvision")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _StubFinder())
    import timm

    return timm


__all__ = ["import_timm"]
