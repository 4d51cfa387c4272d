"""restorelab: curate training data for, stress-test and compare diffusion-based image restorers.

Subpackages: :mod:`restorelab.curation`, :mod:`restorelab.degradations`,
:mod:`restorelab.benchmark`, :mod:`restorelab.dashboard`. This package is the shared core
(image I/O, config, registries, results store, devices); :mod:`restorelab.app` holds the
command line, the demo and the doctor, which sit on top of everything.
"""

from restorelab._version import __version__

__all__ = ["__version__"]
