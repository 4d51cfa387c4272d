"""Latent tiling: run the UNet on overlapping tiles and blend its predictions with Gaussian weights.

Only the model evaluation is tiled. The scheduler, restoration guidance, CFG and the churn
noise all act on the whole latent, so every step draws one noise tensor for the whole image
and neighbouring tiles see the same noisy latent where they overlap: there is nothing for a
seam to come from but the model's own disagreement, which the weights feather out.

Weights: a separable Gaussian centred on the tile with σ = ``sigma_fraction`` × the tile side
(0.25: the weight at a tile's edge is e^{-2} ≈ 0.135 of its centre). Each latent position's
prediction is Σ wᵢ·predᵢ / Σ wᵢ over the tiles that cover it, so a model that acts per
position gives exactly the untiled result.

Sizes are in latent units (1 latent = 8 pixels for SDXL): the default tile 128 covers 1024 px,
SDXL's training size, and stride 64 gives each position two tiles per axis inside the image.
Tile corners are multiples of 8 latents so that ControlNet residuals (at 1/2 and 1/4 of the
latent size) slice exactly.
"""

from __future__ import annotations

import torch
from torch import nn

#: Tile corners and sizes are multiples of this (latent units).
TILE_ALIGN = 8


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` every ``stride`` covering ``[0, length)``.

    The last tile ends at ``length``; one tile (start 0) when ``length <= tile``.

    >>> tile_starts(256, 128, 64)
    [0, 64, 128]
    >>> tile_starts(200, 128, 64)
    [0, 64, 72]
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tiles(height: int, width: int, tile: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(top, left, tile height, tile width) of every tile over a ``height`` × ``width`` latent."""
    th, tw = min(tile, height), min(tile, width)
    return [
        (top, left, th, tw)
        for top in tile_starts(height, th, stride)
        for left in tile_starts(width, tw, stride)
    ]


def gaussian_weights(
    height: int, width: int, *, sigma_fraction: float = 0.25, device=None
) -> torch.Tensor:
    """Separable Gaussian (1, 1, height, width), peak 1 at the centre, σ = fraction × side."""

    def profile(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (x / (sigma_fraction * n)) ** 2)

    return (profile(height)[:, None] * profile(width)[None, :])[None, None]


def check_tiling(tile: int, stride: int) -> None:
    """Raise ``ValueError`` unless 0 < stride ≤ tile and both are multiples of 8 latents."""
    if tile <= 0 or stride <= 0 or stride > tile:
        raise ValueError(f"tile {tile} / tile_stride {stride}: need 0 < tile_stride <= tile")
    if tile % TILE_ALIGN or stride % TILE_ALIGN:
        raise ValueError(
            f"tile {tile} / tile_stride {stride}: both must be multiples of {TILE_ALIGN} latents"
        )


def _crop(tensor: torch.Tensor, box: tuple[int, int, int, int], latent_height: int):
    """The part of ``tensor`` under latent ``box``, at the tensor's own resolution."""
    top, left, th, tw = box
    factor = tensor.shape[-2] / latent_height  # 1/2, 1/4 for ControlNet residuals
    y0, y1 = round(top * factor), round((top + th) * factor)
    x0, x1 = round(left * factor), round((left + tw) * factor)
    return tensor[..., y0:y1, x0:x1]


def _repeat(value, times: int, batch: int):
    """``value`` for ``times`` stacked tiles: batch-first tensors (and those inside dicts)
    repeated along the batch; anything else (scalars, None) as is."""
    if isinstance(value, dict):
        return {k: _repeat(v, times, batch) for k, v in value.items()}
    if times > 1 and isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == batch:
        return value.repeat(times, *([1] * (value.ndim - 1)))
    return value


class TiledUNet(nn.Module):
    """Wraps a diffusers UNet: same call, but evaluated on latent tiles and blended.

    Attributes the pipeline reads (``config``, ``dtype``, ``add_embedding`` …) come from the
    wrapped UNet. ``down_block_additional_residuals`` / ``mid_block_additional_residual`` (a
    ControlNet's output for the whole latent) are cropped to each tile.

    Parameters
    ----------
    unet : UNet2DConditionModel
    tile, stride : int
        Tile side and step in latent units (see :func:`check_tiling`).
    tile_batch : int
        Tiles stacked into one UNet call (all tiles have one size); more keeps a large GPU
        busy at the cost of memory. The result does not depend on it beyond rounding.
    """

    def __init__(
        self, unet: nn.Module, tile: int = 128, stride: int = 64, tile_batch: int = 1
    ) -> None:
        super().__init__()
        check_tiling(tile, stride)
        if int(tile_batch) < 1:
            raise ValueError(f"tile_batch {tile_batch}: need >= 1")
        self.inner = unet
        self.tile, self.stride, self.tile_batch = int(tile), int(stride), int(tile_batch)
        #: Tiles evaluated by the last forward (for tests and logs).
        self.last_tile_count = 0

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, sample: torch.Tensor, timestep, *args, **kwargs):
        height, width = sample.shape[-2:]
        boxes = tiles(height, width, self.tile, self.stride)
        self.last_tile_count = len(boxes)
        if len(boxes) == 1:
            return self.inner(sample, timestep, *args, **kwargs)
        return_dict = kwargs.pop("return_dict", True)
        down = kwargs.pop("down_block_additional_residuals", None)
        mid = kwargs.pop("mid_block_additional_residual", None)
        total = torch.zeros(sample.shape, dtype=torch.float32, device=sample.device)
        weight_sum = torch.zeros((1, 1, height, width), dtype=torch.float32, device=sample.device)
        batch = sample.shape[0]
        for start in range(0, len(boxes), self.tile_batch):
            group = boxes[start : start + self.tile_batch]
            extra = {}
            if down is not None:
                extra["down_block_additional_residuals"] = tuple(
                    torch.cat([_crop(r, box, height) for box in group]) for r in down
                )
            if mid is not None:
                extra["mid_block_additional_residual"] = torch.cat(
                    [_crop(mid, box, height) for box in group]
                )
            crops = torch.cat([_crop(sample, box, height) for box in group])
            repeated_args = [_repeat(a, len(group), batch) for a in args]
            repeated_kwargs = {k: _repeat(v, len(group), batch) for k, v in kwargs.items()}
            timesteps = _repeat(timestep, len(group), batch)
            preds = self.inner(
                crops, timesteps, *repeated_args, return_dict=False, **repeated_kwargs, **extra
            )[0]
            for index, (top, left, th, tw) in enumerate(group):
                pred = preds[index * batch : (index + 1) * batch]
                weight = gaussian_weights(th, tw, device=sample.device)
                total[..., top : top + th, left : left + tw] += pred.float() * weight
                weight_sum[..., top : top + th, left : left + tw] += weight
        blended = (total / weight_sum).to(sample.dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=blended)
        return (blended,)
