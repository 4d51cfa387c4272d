"""Curation: build a captioned, de-duplicated Hugging Face imagefolder from raw image sources."""

from restorelab.curation.filters import FILTERS, register_filter
from restorelab.curation.pipeline import CurationConfig, CurationResult, curate
from restorelab.curation.sources import SourceItem, iter_sources

__all__ = [
    "FILTERS",
    "CurationConfig",
    "CurationResult",
    "SourceItem",
    "curate",
    "iter_sources",
    "register_filter",
]
