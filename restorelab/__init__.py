"""restorelab: curate training data for, stress-test and compare diffusion-based image restorers.

Subpackages: :mod:`restorelab.curation`, :mod:`restorelab.degradations`,
:mod:`restorelab.benchmark`, :mod:`restorelab.dashboard`. The shared core (image I/O, config,
results store, CLI) lives in this package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("restorelab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
