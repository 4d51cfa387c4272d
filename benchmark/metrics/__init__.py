"""Image-quality metrics behind one registry: ``create_metric(name, **options)``."""

from restorelab.benchmark.metrics import (  # noqa: F401  (register the metrics)
    dists,
    fidelity,
    learned,
    no_reference,
)
from restorelab.benchmark.metrics.base import (
    METRICS,
    Metric,
    MetricSpec,
    create_metric,
    list_metrics,
    register_metric,
)
from restorelab.benchmark.metrics.fidelity import rgb_to_y

__all__ = [
    "METRICS",
    "Metric",
    "MetricSpec",
    "create_metric",
    "list_metrics",
    "register_metric",
    "rgb_to_y",
]
