"""The SDXL + LoRA restorer (``sdxl``): diffusers SDXL img2img / ControlNet img2img with
SUPIR-style restoration-guided sampling, linear CFG, weighted LoRA adapters, latent tiling and
colour fix. Heavy imports (torch, diffusers) happen only when a restorer is built."""

from restorelab.benchmark.restorers.sdxl.restorer import SDXLRestorer

__all__ = ["SDXLRestorer"]
