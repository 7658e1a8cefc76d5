"""zipp_persona — zero-shot image personalization from personas.

Import it as ``import zipp_persona as zipp``. The distribution never installs a
top-level ``zipp`` module: that name belongs to a widely installed PyPI package.
"""
from ._zipp import __version__

__all__ = ["__version__"]
