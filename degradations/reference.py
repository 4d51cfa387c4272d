"""Access to the reference implementation, imagecorruptions 1.1.2, for parity checks and benchmarks.

imagecorruptions 1.1.2 (the last release on PyPI) no longer imports as published: it needs
``pkg_resources`` (gone from current setuptools) and calls
``skimage.filters.gaussian(..., multichannel=True)`` (removed in scikit-image 0.19). This module
patches both *inside the imported module only* and returns it. It is used by the test suite and
``benchmarks/degradations.py``; restorelab's own degradations never import it.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib import resources
from types import ModuleType


def _install_pkg_resources_stub() -> None:
    if "pkg_resources" in sys.modules:
        return
    try:
        importlib.import_module("pkg_resources")
        return
    except ImportError:
        pass
    stub = types.ModuleType("pkg_resources")

    def resource_filename(package: str, name: str) -> str:
        return str(resources.files(package) / name.lstrip("./"))

    stub.resource_filename = resource_filename  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stub


def load_imagecorruptions() -> ModuleType:
    """Import imagecorruptions 1.1.2, patched to run with current setuptools and scikit-image.

    Raises
    ------
    ImportError
        When imagecorruptions is not installed (``pip install imagecorruptions==1.1.2``).
    """
    _install_pkg_resources_stub()
    try:
        package = importlib.import_module("imagecorruptions")
        corruptions = importlib.import_module("imagecorruptions.corruptions")
    except ImportError as exc:
        raise ImportError(
            "imagecorruptions is needed for parity checks: pip install 'imagecorruptions==1.1.2' "
            "(it is part of restorelab's dev extra)"
        ) from exc
    if not getattr(corruptions, "_restorelab_patched", False):
        from skimage.filters import gaussian as skimage_gaussian

        def gaussian(image, sigma=1, multichannel=None, **kwargs):
            if multichannel:
                kwargs.setdefault("channel_axis", -1)
            return skimage_gaussian(image, sigma=sigma, **kwargs)

        corruptions.gaussian = gaussian
        corruptions._restorelab_patched = True
    return package
