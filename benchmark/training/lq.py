"""Low-quality inputs made on the fly by the degradation zoo, for the ``restore`` objective.

Every training sample draws one cell (op or chain, severity) of a grid uniformly and a seed of
its own, ``int(SeedSequence([seed, step, micro_batch, rank, position]))``: the same run sees
the same LQ images on any restart. Single ops that :mod:`restorelab.degradations.torch_ops`
implements run batched with :func:`~restorelab.degradations.torch_ops.degrade_batch` on the
training device (grouped by op and severity); chains, ``realesrgan`` and ops whose grid
replaces the severity table run image by image through the numpy path on the CPU, and an
output of another size (Real-ESRGAN's downscale) is resized back to the target's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from restorelab.degradations.base import degrade_with_params, is_chain
from restorelab.degradations.grid import Grid
from restorelab.degradations.torch_ops import TORCH_OPS, degrade_batch

__all__ = ["LQCell", "make_lq", "sample_cells"]


@dataclass(frozen=True)
class LQCell:
    """The degradation applied to one training sample."""

    degradation: str
    severity: int
    seed: int


def _cells(grid: Grid) -> list[tuple[str, int]]:
    return sorted({(name, severity) for name, severity, _ in grid.cells()})


def sample_cells(grid: Grid, count: int, key: tuple[int, ...]) -> list[LQCell]:
    """``count`` cells drawn uniformly from ``grid``, each with its own seed, from ``key``."""
    cells = _cells(grid)
    rng = np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))
    picks = rng.integers(0, len(cells), size=count)
    seeds = rng.integers(0, 2**31 - 1, size=count)
    return [LQCell(cells[p][0], cells[p][1], int(s)) for p, s in zip(picks, seeds, strict=True)]


def _torch_path(grid: Grid, name: str) -> bool:
    return not is_chain(name) and name in TORCH_OPS.names() and grid.levels_for(name) is None


def make_lq(pixels: torch.Tensor, cells: list[LQCell], grid: Grid) -> torch.Tensor:
    """Degrade a float batch (B, 3, H, W) in [0, 1], image ``i`` by ``cells[i]``.

    Returns a float32 batch of the same shape and device, in [0, 1], detached.
    """
    if len(cells) != pixels.shape[0]:
        raise ValueError(f"{len(cells)} cells for a batch of {pixels.shape[0]}")
    clean = pixels.detach().float().clamp(0, 1)
    out = torch.empty_like(clean)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, cell in enumerate(cells):
        groups.setdefault((cell.degradation, cell.severity), []).append(i)
    for (name, severity), rows in groups.items():
        if _torch_path(grid, name):
            index = torch.tensor(rows, device=clean.device)
            seeds = [cells[i].seed for i in rows]
            out[index] = degrade_batch(clean[index], name, severity, seeds)
            continue
        for i in rows:
            image = (clean[i].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
            result = degrade_with_params(
                image, name, severity, cells[i].seed, levels=grid.levels_for(name)
            ).image
            lq = torch.from_numpy(result.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            if lq.shape[-2:] != clean.shape[-2:]:
                lq = torch.nn.functional.interpolate(
                    lq, size=clean.shape[-2:], mode="bicubic", align_corners=False
                ).clamp(0, 1)
            out[i] = lq[0].to(clean.device)
    return out
