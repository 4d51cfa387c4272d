"""Colour fix: give the restored image the input's colours (low frequencies or channel statistics).

Diffusion restorers drift in colour; SUPIR (like StableSR before it) corrects the output
against the degraded input. Both functions take float tensors (B, 3, H, W) in any consistent
range (the pipeline uses [−1, 1]) and return the corrected output in the same range (unclipped).

* :func:`wavelet_colour_fix`: low frequencies from the input, high frequencies from the output.
  The image is split with an *à trous* (stationary) wavelet transform: ``levels`` passes of a
  3×3 binomial blur whose taps are ``2**i`` pixels apart; what the blurs remove is the high
  band, the last blur the low band.
* :func:`adain_colour_fix`: each channel of the output gets the input's mean and standard
  deviation (adaptive instance normalisation, Huang & Belongie 2017).

Reference: Wang et al., "Exploiting Diffusion Prior for Real-World Image Super-Resolution"
(StableSR), 2023, colour correction; used as ``color_fix_type`` in SUPIR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

COLOUR_FIXES = ("wavelet", "adain", "none")


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """3×3 binomial blur ([1, 2, 1]ᵀ[1, 2, 1] / 16) with taps ``dilation`` pixels apart.

    Borders are replicated, so a constant image stays constant. Shape (B, C, H, W) kept.
    """
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=image.dtype, device=image.device)
    kernel = (taps[:, None] * taps[None, :]) / 16.0
    channels = image.shape[1]
    kernel = kernel.expand(channels, 1, 3, 3).contiguous()
    padded = nnf.pad(image, (dilation,) * 4, mode="replicate")
    return nnf.conv2d(padded, kernel, groups=channels, dilation=dilation)


def wavelet_decompose(image: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) with ``high + low == image``: ``low`` after ``levels`` dilated blurs."""
    low = image
    for level in range(levels):
        low = wavelet_blur(low, 2**level)
    return image - low, low


def wavelet_colour_fix(
    output: torch.Tensor, reference: torch.Tensor, *, levels: int = 5
) -> torch.Tensor:
    """High frequencies of ``output`` plus low frequencies of ``reference`` (same shape).

    ``levels`` = 5 removes detail up to about 2⁵ = 32 pixels from the reference's contribution.
    """
    if output.shape != reference.shape:
        raise ValueError(f"colour fix: output {tuple(output.shape)} vs input {reference.shape}")
    high, _ = wavelet_decompose(output, levels)
    _, low = wavelet_decompose(reference, levels)
    return high + low


def adain_colour_fix(
    output: torch.Tensor, reference: torch.Tensor, *, eps: float = 1e-5
) -> torch.Tensor:
    """Per image and channel: ``(output − μ_o) / σ_o · σ_r + μ_r`` (σ: population std)."""
    if output.shape[:2] != reference.shape[:2]:
        raise ValueError(f"colour fix: output {tuple(output.shape)} vs input {reference.shape}")
    dims = (2, 3)
    mean_o, std_o = output.mean(dims, keepdim=True), output.std(dims, keepdim=True, correction=0)
    mean_r = reference.mean(dims, keepdim=True)
    std_r = reference.std(dims, keepdim=True, correction=0)
    return (output - mean_o) / (std_o + eps) * std_r + mean_r


def colour_fix(output: torch.Tensor, reference: torch.Tensor, method: str) -> torch.Tensor:
    """Apply ``method`` (``"wavelet"``, ``"adain"`` or ``"none"``)."""
    if method == "wavelet":
        return wavelet_colour_fix(output, reference)
    if method == "adain":
        return adain_colour_fix(output, reference)
    if method == "none":
        return output
    raise ValueError(f"colour_fix {method!r}: expected one of {', '.join(COLOUR_FIXES)}")
