"""LoRA fine-tuning of SDXL on a curated corpus (``restorelab train-lora``).

- :mod:`.subset`: the ``--subset`` expression language over corpus metadata (no ``eval``);
- :mod:`.data`: corpus rows, caption checks, aspect buckets, crops with SDXL's size/crop
  conditioning, the bucketed batch sampler;
- :mod:`.models`: local SDXL/ControlNet folders (one-line errors when missing) and prompts;
- :mod:`.lq`: LQ images made on the fly by the degradation zoo (``restore`` objective);
- :mod:`.lora`: :func:`train_lora`, the training loop run by accelerate.
"""

from .data import Selection, select_examples
from .lora import TrainConfig, TrainResult, latest_checkpoint, train_lora
from .subset import SubsetError, parse_subset

__all__ = [
    "Selection",
    "SubsetError",
    "TrainConfig",
    "TrainResult",
    "latest_checkpoint",
    "parse_subset",
    "select_examples",
    "train_lora",
]
