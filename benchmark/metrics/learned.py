"""LPIPS (learned perceptual distance) and degradation consistency.

``lpips``
    Zhang et al. 2018, v0.1 through the ``lpips`` package. Nothing is ever downloaded: the
    ImageNet backbone comes from ``$TORCH_HOME/hub/checkpoints`` (torchvision's file names) or
    from the ``weights_dir`` option, the linear calibration layers ship inside ``lpips``. A
    missing file raises :class:`~restorelab.weights.MissingWeightsError` naming it.

``consistency``
    A ground-truth-free check of a restoration: the known degradation is applied again to the
    restored image and compared with the degraded input by PSNR. Detail that the degradation
    cannot explain (a hallucinated texture that blurs, or downscales, into something else than
    the input) lowers the score; detail the degradation erases (e.g. any high-frequency content
    under strong blur) is invisible to it, so it complements, never replaces, full-reference
    fidelity.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from restorelab.benchmark.metrics.base import CellContext, register_metric
from restorelab.benchmark.metrics.fidelity import _crop, _psnr
from restorelab.devices import resolve_device
from restorelab.weights import checkpoint_path, require_weights

# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------

_LPIPS_NETS = ("alex", "vgg")  # backbone files: the lpips-<net>-backbone weight specs
_LPIPS_CACHE: dict[tuple[str, str, str], Any] = {}
_LPIPS_LOCK = threading.Lock()


def _lpips_backbone_path(net: str, weights_dir: str | None) -> Path:
    """The backbone checkpoint for ``net``; raise :class:`MissingWeightsError` when absent."""
    if net not in _LPIPS_NETS:
        raise ValueError(f"lpips: net must be one of {sorted(_LPIPS_NETS)}, got {net!r}")
    return checkpoint_path(f"lpips-{net}-backbone", weights_dir)


def _check_lpips(options: dict) -> None:
    _lpips_backbone_path(options["net"], options["weights_dir"])
    require_weights(f"lpips-{options['net']}-linear")


def _backbone_state_dict(model: Any, torchvision_state: dict) -> dict:
    """Rename torchvision ``features.<i>.<param>`` keys to lpips' ``net.slice<k>.<i>.<param>``.

    lpips splits torchvision's ``features`` Sequential into slices that keep the original
    layer indices as child names, so each index belongs to exactly one slice.
    """
    slice_of: dict[str, str] = {}
    for slice_name, module in model.net.named_children():
        for index, _ in module.named_children():
            slice_of[index] = slice_name
    renamed = {}
    for key, value in torchvision_state.items():
        parts = key.split(".")
        if parts[0] != "features" or parts[1] not in slice_of:
            continue  # the classifier head (and layers past the last slice) are unused
        renamed[f"net.{slice_of[parts[1]]}.{'.'.join(parts[1:])}"] = value
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    missing = expected - set(renamed)
    if missing:
        raise ValueError(
            f"lpips: the backbone checkpoint lacks {len(missing)} tensors, e.g. "
            f"{sorted(missing)[:3]}; is it torchvision's {model.pnet_type} state dict?"
        )
    return renamed


def _lpips_model(net: str, device: str, weights_dir: str | None) -> Any:
    """The LPIPS model for (net, device, backbone file), built once per process."""
    path = _lpips_backbone_path(net, weights_dir)
    key = (net, device, str(path.resolve()))
    with _LPIPS_LOCK:
        if key in _LPIPS_CACHE:
            return _LPIPS_CACHE[key]
        import lpips
        import torch

        linear = require_weights(f"lpips-{net}-linear")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=` argument
            # pnet_rand=True: a randomly initialised backbone, so torchvision downloads nothing;
            # the ImageNet weights are loaded from the local file below.
            model = lpips.LPIPS(
                net=net, pretrained=True, pnet_rand=True, model_path=str(linear), verbose=False
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(_backbone_state_dict(model, state), strict=False)
        model = model.to(device).eval()
        _LPIPS_CACHE[key] = model
        return model


def image_tensor(image: np.ndarray, device: str) -> Any:
    """RGB ``uint8`` (H, W, 3) → float32 (1, 3, H, W) in [0, 1] on ``device``."""
    import torch

    array = np.ascontiguousarray(image)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only arrays
        array = array.copy()
    return (
        torch.from_numpy(array).permute(2, 0, 1)[None].to(device=device, dtype=torch.float32) / 255
    )


def lpips_batch(
    reference: Any,
    distorted: Any,
    *,
    net: str = "alex",
    device: str = "auto",
    weights_dir: str | None = None,
    crop_border: int = 0,
) -> Any:
    """LPIPS of two (B, 3, H, W) float batches in [0, 1] on their device; (B,) tensor.

    The model runs on the batches' device (``device`` is ignored here).
    """
    from restorelab.benchmark.metrics.batched import crop_batch

    reference, distorted = crop_batch(reference, crop_border), crop_batch(distorted, crop_border)
    model = _lpips_model(net, str(reference.device), weights_dir)
    return model(reference.float() * 2.0 - 1.0, distorted.float() * 2.0 - 1.0).reshape(-1)


@register_metric(
    "lpips",
    batch="restorelab.benchmark.metrics.learned:lpips_batch",
    higher_is_better=False,
    convention="LPIPS v0.1 (lpips package), ImageNet backbone, RGB uint8 mapped to [-1, 1], "
    "spatial mean",
    value_range=(0.0, float("inf")),
    check=_check_lpips,
    net="alex",
    device="auto",
    weights_dir=None,
    crop_border=0,
)
def lpips_distance(
    reference: np.ndarray,
    distorted: np.ndarray,
    *,
    net: str = "alex",
    device: str = "auto",
    weights_dir: str | None = None,
    crop_border: int = 0,
) -> float:
    """Learned perceptual image patch similarity (Zhang et al. 2018); lower is closer.

    Parameters
    ----------
    reference, distorted : ndarray
        RGB ``uint8`` (H, W, 3) images of the same shape; mapped to [-1, 1] as LPIPS expects.
    net : {"alex", "vgg"}
        The backbone. "alex" is the variant most papers report.
    device : str
        A torch device, or "auto" (CUDA when available, else CPU).
    weights_dir : str, optional
        Folder holding torchvision's backbone file (``alexnet-owt-7be5be79.pth`` or
        ``vgg16-397923af.pth``); default ``$TORCH_HOME/hub/checkpoints``.
    crop_border : int
        Pixels removed from each side before scoring.

    Returns
    -------
    float
        0 for identical images; typical values lie in [0, 1] (≈0.1 mild, ≥0.5 severe damage).

    Raises
    ------
    MissingWeightsError
        When the backbone checkpoint is not on this machine (the message names the file).
    """
    import torch

    device = resolve_device(device)
    model = _lpips_model(net, device, weights_dir)
    with torch.inference_mode():
        value = model(
            image_tensor(_crop(reference, crop_border), device) * 2.0 - 1.0,
            image_tensor(_crop(distorted, crop_border), device) * 2.0 - 1.0,
        )
    return float(value.reshape(-1)[0].item())


# ---------------------------------------------------------------------------------------------
# Consistency with the degraded input
# ---------------------------------------------------------------------------------------------


def _check_consistency(options: dict) -> None:
    from restorelab.degradations import is_stochastic

    if options["resize"] is not None and options["degradation"] is not None:
        raise ValueError("consistency: give a degradation or a resize factor, not both")
    if options["resize"] is not None and not (
        isinstance(options["resize"], int) and options["resize"] >= 2
    ):
        raise ValueError(f"consistency: resize must be an integer >= 2, got {options['resize']!r}")
    if options["degradation"] is not None and is_stochastic(str(options["degradation"])):
        raise ValueError(
            f"consistency: {options['degradation']!r} is random; degrading the output again "
            "says nothing without the ground truth (use a blur, resize, JPEG or pixelate)"
        )


def _consistency_for_cell(options: dict, context: CellContext) -> dict | None:
    """Options for one benchmark cell: those given, else the cell's own degradation.

    Super-resolution cells (``scale`` > 1) downscale by that factor; cells whose degradation
    is random or unknown (same-size real pairs) have no consistency (None: NaN).
    """
    from restorelab.degradations import is_stochastic

    if options["degradation"] is not None or options["resize"] is not None:
        return options
    if context.scale > 1:
        return {**options, "resize": int(context.scale)}
    if context.degradation is None or is_stochastic(context.degradation):
        return None
    return {
        **options,
        "degradation": context.degradation,
        "severity": int(context.severity),
        "seed": int(context.seed),
        "levels": context.levels,
    }


def _downscale(image: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    if height % factor or width % factor:
        raise ValueError(
            f"consistency: restored size {width}x{height} is not a multiple of resize={factor}"
        )
    return cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


@register_metric(
    "consistency",
    higher_is_better=True,
    convention="PSNR (RGB, data_range=255) between the degraded input and the restored image "
    "degraded again (restorelab.degradations.degrade, or INTER_AREA downscale for resize)",
    value_range=(0.0, float("inf")),
    same_shape=False,
    check=_check_consistency,
    for_cell=_consistency_for_cell,
    degradation=None,
    severity=1,
    seed=0,
    levels=None,
    resize=None,
    crop_border=0,
)
def consistency(
    degraded_input: np.ndarray,
    restored: np.ndarray,
    *,
    degradation: str | None = None,
    severity: int = 1,
    seed: int = 0,
    levels: tuple | None = None,
    resize: int | None = None,
    crop_border: int = 0,
) -> float:
    """Degradation consistency: PSNR of ``degrade(restored)`` against the degraded input.

    No ground truth is needed: in the registry's (reference, distorted) signature the
    reference is the degraded input the restorer saw and the distorted image is its output.
    A restoration that explains the input scores high; detail that the degradation cannot
    explain (it degrades into something the input does not show) is hallucinated and lowers
    the score. Detail the degradation erases entirely is not seen by this metric.

    Parameters
    ----------
    degraded_input : ndarray
        RGB ``uint8`` input of the restorer: the same size as ``restored``, or ``1 / resize``
        of it for super-resolution.
    restored : ndarray
        RGB ``uint8`` output of the restorer.
    degradation : str, optional
        A :func:`restorelab.degradations.degrade` name or chain (e.g. "gaussian_blur"); give
        this or ``resize``, not both. Only deterministic degradations (blurs, JPEG, pixelate)
        make sense here; random ones are refused. In a benchmark run (``restorelab bench``)
        leave both unset: each cell uses its own degradation, severity and seed (its
        super-resolution factor for paired sets), and cells with a random degradation score
        NaN.
    severity, seed : int
        Passed to :func:`~restorelab.degradations.degrade_with_params`.
    levels : tuple, optional
        A replacement severity table (PSNR-matched grids), as for ``degrade_with_params``.
    resize : int, optional
        Super-resolution factor: ``restored`` is downscaled by it (OpenCV ``INTER_AREA``, i.e.
        box averaging) and compared with the low-resolution input.
    crop_border : int
        Pixels removed from each side (of the compared, input-sized images) before scoring.

    Returns
    -------
    float
        PSNR in dB, higher is more consistent; ``inf`` when the re-degraded output equals the
        input exactly.
    """
    from restorelab.degradations import degrade_with_params

    if resize is not None:
        again = _downscale(restored, resize)
    elif degradation is not None:
        again = degrade_with_params(restored, degradation, severity, seed, levels=levels).image
    else:
        raise ValueError(
            "consistency: give a degradation (e.g. 'consistency:degradation=gaussian_blur,"
            "severity=3') or a resize factor; benchmark runs use each cell's own"
        )
    if again.shape != degraded_input.shape:
        raise ValueError(
            f"consistency: the re-degraded output {again.shape} and the degraded input "
            f"{degraded_input.shape} differ in shape"
            + ("" if resize else "; for super-resolution set resize=<factor>")
        )
    return _psnr(_crop(degraded_input, crop_border), _crop(again, crop_border))
