"""Curation: build a captioned, de-duplicated Hugging Face imagefolder of exactly N photographs.

``curate(sources, out, config)`` reads folders, globs, Hugging Face datasets, Parquet,
webdataset shards and URL lists; measures every image at full resolution (cached by content
hash); applies the filters; drops exact and near duplicates; captions; selects N by quality
and diversity; and writes the images, ``metadata.jsonl``, ``rejected.csv`` and a dataset card.
"""

from restorelab.curation.filters import FILTERS, CurationFilter, register_filter
from restorelab.curation.pipeline import CurationError, CurationResult, curate
from restorelab.curation.schema import CONFIG_KEYS, CurationConfig, config_help, validate_config
from restorelab.curation.sources import SourceItem, SourceStats, count_sources, iter_sources

__all__ = [
    "CONFIG_KEYS",
    "FILTERS",
    "CurationConfig",
    "CurationError",
    "CurationFilter",
    "CurationResult",
    "SourceItem",
    "SourceStats",
    "config_help",
    "count_sources",
    "curate",
    "iter_sources",
    "register_filter",
    "validate_config",
]
