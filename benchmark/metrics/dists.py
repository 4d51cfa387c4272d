"""DISTS: deep image structure and texture similarity (Ding, Ma, Wang & Simoncelli, 2020).

A VGG-16 whose max-pooling layers are replaced by L2 pooling (a 3×3 Hann window, stride 2,
on squared activations) gives six feature sets: the RGB input itself and the outputs of
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (3 + 64 + 128 + 256 + 512 + 512 = 1475
channels). Per channel, a *texture* term compares the global means and a *structure* term
the global (co)variances, SSIM-like with c1 = c2 = 1e-6; learned non-negative weights α, β
(normalised to sum to one) combine them, and ``DISTS = 1 - Σ α·S_texture - Σ β·S_structure``.
0 means identical; typical distortions score 0.1-0.4.

Weights never download: the ImageNet VGG-16 comes from torchvision's checkpoint file
(``vgg16-397923af.pth``) and α, β from the published file (pyiqa's
``DISTS_weights-f5e65c96.pth`` or the DISTS-pytorch package's ``weights.pt``), both looked up
locally (:data:`restorelab.weights.WEIGHTS`); a missing file raises
:class:`~restorelab.weights.MissingWeightsError` naming it.

Convention: RGB in [0, 1] (``uint8 / 255``), the VGG part normalised with the ImageNet mean
and std, images at their own resolution (the authors' example resizes to 256 px on the short
side first; pyiqa, and this metric, do not).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from restorelab.benchmark.metrics.base import register_metric
from restorelab.benchmark.metrics.fidelity import _crop
from restorelab.weights import WEIGHTS, MissingWeightsError, checkpoint_path, require_weights

__all__ = ["DISTS_CHANNELS", "build_dists", "dists_distance", "load_dists"]

#: Channels of the six feature sets (input, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
#: torchvision ``vgg16().features`` index of each max-pooling layer DISTS replaces by L2
#: pooling → the channels it pools.
_POOL_CHANNELS = {4: 64, 9: 128, 16: 256, 23: 512}
#: ``vgg16().features`` slice (start, stop) that ends at each feature set after the input.
_STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
_ALPHA_BETA_FILES = ("DISTS_weights-f5e65c96.pth", "weights.pt")
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _module_class() -> type:
    """The torch module class, defined on first use (torch is imported lazily)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    class L2Pooling(torch.nn.Module):
        """sqrt(Hann3x3 * x² + 1e-12), stride 2, padding 1, per channel."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            window = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
            kernel = window[:, None] * window[None, :]
            kernel = (kernel / kernel.sum()).float()
            self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
            return (pooled + 1e-12).sqrt()

    class DISTS(torch.nn.Module):
        """DISTS on (B, 3, H, W) float batches in [0, 1]; ``forward`` returns (B,) distances."""

        def __init__(self) -> None:
            super().__init__()
            from torchvision.models import vgg16

            features = vgg16(weights=None).features
            stages = []
            for start, stop in _STAGES:
                layers = [
                    L2Pooling(_POOL_CHANNELS[i]) if i in _POOL_CHANNELS else features[i]
                    for i in range(start, stop)
                ]
                stages.append(torch.nn.Sequential(*layers))
            self.stages = torch.nn.ModuleList(stages)
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            total = sum(DISTS_CHANNELS)
            self.register_buffer("alpha", torch.full((1, total, 1, 1), 0.1))
            self.register_buffer("beta", torch.full((1, total, 1, 1), 0.1))
            self.requires_grad_(False)

        def features(self, x: torch.Tensor) -> list[torch.Tensor]:
            """The six feature sets of a batch in [0, 1]: the input, then the five stages."""
            out = [x]
            h = (x - self.mean) / self.std
            for stage in self.stages:
                h = stage(h)
                out.append(h)
            return out

        def forward(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
            c1 = c2 = 1e-6
            total = self.alpha.sum() + self.beta.sum()
            alphas = torch.split(self.alpha / total, DISTS_CHANNELS, dim=1)
            betas = torch.split(self.beta / total, DISTS_CHANNELS, dim=1)
            texture = structure = 0.0
            pairs = zip(self.features(reference), self.features(distorted), strict=True)
            for (x, y), alpha, beta in zip(pairs, alphas, betas, strict=True):
                x_mean = x.mean((2, 3), keepdim=True)
                y_mean = y.mean((2, 3), keepdim=True)
                s_texture = (2 * x_mean * y_mean + c1) / (x_mean**2 + y_mean**2 + c1)
                texture = texture + (alpha * s_texture).sum(1, keepdim=True)
                x_var = ((x - x_mean) ** 2).mean((2, 3), keepdim=True)
                y_var = ((y - y_mean) ** 2).mean((2, 3), keepdim=True)
                covariance = (x * y).mean((2, 3), keepdim=True) - x_mean * y_mean
                s_structure = (2 * covariance + c2) / (x_var + y_var + c2)
                structure = structure + (beta * s_structure).sum(1, keepdim=True)
            return (1 - (texture + structure)).reshape(-1)

    return DISTS


_DISTS_CLASS: type | None = None


def build_dists() -> Any:
    """A DISTS module with random VGG weights and uniform α, β (load real ones with
    :func:`load_dists`)."""
    global _DISTS_CLASS
    if _DISTS_CLASS is None:
        _DISTS_CLASS = _module_class()
    return _DISTS_CLASS()


def _weight_files(weights_dir: str | None) -> tuple[Path, Path]:
    """(VGG-16 checkpoint, α/β file); raise :class:`MissingWeightsError` naming what is absent."""
    if weights_dir is None:
        return checkpoint_path("dists-vgg-backbone"), require_weights("dists-alpha-beta")
    folder = Path(weights_dir).expanduser()
    backbone = folder / WEIGHTS["dists-vgg-backbone"].filename
    found = [folder / name for name in _ALPHA_BETA_FILES if (folder / name).is_file()]
    missing = [] if backbone.is_file() else [backbone.name]
    if not found:
        missing.append(" or ".join(_ALPHA_BETA_FILES))
    if missing:
        spec_vgg, spec_ab = WEIGHTS["dists-vgg-backbone"], WEIGHTS["dists-alpha-beta"]
        raise MissingWeightsError(
            f"dists: {', '.join(missing)} not found in {folder}. To get the VGG-16 file: "
            f"{spec_vgg.how_to_get}; for alpha/beta: {spec_ab.how_to_get} (then copy the "
            f"files into {folder})."
        )
    return backbone, found[0]


def load_dists(backbone_path: str | Path, alpha_beta_path: str | Path) -> Any:
    """DISTS with torchvision's VGG-16 state dict and the published α, β.

    ``backbone_path`` holds ``features.<i>.weight/bias`` keys (torchvision's file);
    ``alpha_beta_path`` a dict with ``alpha`` and ``beta`` of shape (1, 1475, 1, 1),
    possibly under ``params`` and beside other keys (pyiqa's file holds the whole model).
    """
    import torch

    model = build_dists()
    vgg = torch.load(backbone_path, map_location="cpu", weights_only=True)
    state = {}
    for key, value in vgg.items():
        parts = key.split(".")
        if parts[0] != "features":
            continue
        index = int(parts[1])
        for stage, (start, stop) in enumerate(_STAGES):
            if start <= index < stop:
                state[f"stages.{stage}.{index - start}.{parts[2]}"] = value
    expected = {k for k in model.state_dict() if k.startswith("stages.") and "kernel" not in k}
    if expected - set(state):
        raise ValueError(
            f"dists: {backbone_path} lacks {len(expected - set(state))} VGG-16 tensors, e.g. "
            f"{sorted(expected - set(state))[:2]}; is it torchvision's vgg16 state dict?"
        )
    weights = torch.load(alpha_beta_path, map_location="cpu", weights_only=True)
    weights = weights.get("params", weights)
    for name in ("alpha", "beta"):
        if name not in weights:
            raise ValueError(f"dists: {alpha_beta_path} has no {name!r} tensor")
        value = weights[name].reshape(1, -1, 1, 1).float()
        if value.shape[1] != sum(DISTS_CHANNELS):
            raise ValueError(
                f"dists: {name} in {alpha_beta_path} has {value.shape[1]} entries, "
                f"expected {sum(DISTS_CHANNELS)}"
            )
        state[name] = value
    model.load_state_dict(state, strict=False)
    return model.eval()


def _model(device: str, weights_dir: str | None) -> Any:
    backbone, alpha_beta = _weight_files(weights_dir)
    key = (device, str(backbone.resolve()), str(alpha_beta.resolve()))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_dists(backbone, alpha_beta).to(device)
        return _CACHE[key]


def _check_dists(options: dict) -> None:
    _weight_files(options["weights_dir"])


def dists_batch(
    reference: Any,
    distorted: Any,
    *,
    device: str = "auto",
    weights_dir: str | None = None,
    crop_border: int = 0,
) -> Any:
    """DISTS of two (B, 3, H, W) float batches in [0, 1] (any device); (B,) float tensor.

    The model runs on the batches' device (``device`` is ignored here).
    """
    import torch

    from restorelab.benchmark.metrics.batched import crop_batch

    reference, distorted = crop_batch(reference, crop_border), crop_batch(distorted, crop_border)
    model = _model(str(reference.device), weights_dir)
    with torch.inference_mode():
        return model(reference.float(), distorted.float())


@register_metric(
    "dists",
    higher_is_better=False,
    convention="DISTS (Ding et al. 2020), VGG-16 ImageNet + published alpha/beta, RGB in "
    "[0, 1], native resolution",
    value_range=(0.0, 1.0),
    check=_check_dists,
    batch="restorelab.benchmark.metrics.dists:dists_batch",
    device="auto",
    weights_dir=None,
    crop_border=0,
)
def dists_distance(
    reference: np.ndarray,
    distorted: np.ndarray,
    *,
    device: str = "auto",
    weights_dir: str | None = None,
    crop_border: int = 0,
) -> float:
    """DISTS between two RGB ``uint8`` images of the same shape; 0 for identical images.

    Parameters
    ----------
    reference, distorted : ndarray
        RGB ``uint8`` (H, W, 3); mapped to [0, 1].
    device : str
        A torch device, or "auto" (CUDA when available, else CPU).
    weights_dir : str, optional
        Folder holding ``vgg16-397923af.pth`` and ``DISTS_weights-f5e65c96.pth`` (or
        ``weights.pt``); default: ``$TORCH_HOME/hub/checkpoints`` and the places listed in
        :data:`restorelab.weights.WEIGHTS` (``dists-alpha-beta``).
    crop_border : int
        Pixels removed from each side before scoring.
    """
    from restorelab.benchmark.metrics.learned import image_tensor
    from restorelab.devices import resolve_device

    device = resolve_device(device)
    value = dists_batch(
        image_tensor(_crop(reference, crop_border), device),
        image_tensor(_crop(distorted, crop_border), device),
        weights_dir=weights_dir,
    )
    return float(value[0].item())
