"""The restoration-guided Euler scheduler: SUPIR's restoration guidance in diffusers' Euler step.

At every step whose next noise level is above ``restoration_sigma_min`` the scheduler pulls the
model's predicted clean latent x0 toward the degraded image's latent z before the Euler update:

    x0 ← x0 + (σ / σ_max)^τ · (z − x0)

with σ the step's (churned) noise level, σ_max the largest σ of the *training* schedule and
τ = ``restoration_scale``. Small τ pulls hard at every σ (τ → 0: x0 → z); large τ pulls only near
σ_max; τ ≤ 0 turns guidance off and :meth:`step` is exactly the parent's.

Which σ_max
-----------
diffusers' img2img truncates the schedule (``strength`` < 1, and "leading" spacing never reaches
the last training step), so the first σ of a run is often far below the training schedule's
largest σ (for SDXL 14.6146 = sqrt((1 − ᾱ_999) / ᾱ_999)). We use the training schedule's σ_max,
as SUPIR's sampler does (its σ_max is its discretisation's largest σ). The weight then depends
on the noise level only, not on ``strength`` or the number of steps: two runs visit the same σ
with the same pull. ``guidance_sigma_max`` in the config overrides it.

References
----------
Yu et al., "Scaling Up to Excellence: Practicing Model Scaling for Photo-Realistic Image
Restoration In the Wild", CVPR 2024, Sec. 3.4 (restoration-guided sampling); the formula and the
0.05 threshold as in SUPIR's ``RestoreEDMSampler`` (github.com/Fanghua-Yu/SUPIR,
``sgm/modules/diffusionmodules/sampling.py``). Karras et al. 2022, Algorithm 2 (Euler + churn).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor


def restoration_weight(sigma: float, sigma_max: float, scale: float) -> float:
    """The pull (σ / σ_max)^τ toward the LQ latent, in [0, 1] for 0 < σ ≤ σ_max; 0 when τ ≤ 0."""
    if scale <= 0:
        return 0.0
    return float((sigma / sigma_max) ** scale)


class RestorationEulerScheduler(EulerDiscreteScheduler):
    """:class:`~diffusers.EulerDiscreteScheduler` with SUPIR's restoration guidance and churn.

    Parameters (config, besides the parent's)
    ----------------------------------------
    restoration_scale : float
        τ of the pull (SUPIR's ``restore_cfg`` / ``s_stage1``); ≤ 0 turns guidance off.
    restoration_sigma_min : float
        Guidance applies while the *next* σ is above this (SUPIR: 0.05).
    guidance_sigma_max : float or None
        σ_max of the weight; None: the training schedule's largest σ (see the module notes).
    s_churn, s_noise : float
        Karras churn and noise inflation used when the pipeline does not pass them to
        :meth:`step` (diffusers' pipelines never do); 0 and 1 are the parent's defaults.

    The LQ latent z (scaled like the pipeline's latents, batch first) is set with
    :meth:`set_restoration_target` before sampling.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        prediction_type: str = "epsilon",
        interpolation_type: str = "linear",
        use_karras_sigmas: bool | None = False,
        use_exponential_sigmas: bool | None = False,
        use_beta_sigmas: bool | None = False,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        timestep_spacing: str = "linspace",
        timestep_type: str = "discrete",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        final_sigmas_type: str = "zero",
        restoration_scale: float = -1.0,
        restoration_sigma_min: float = 0.05,
        guidance_sigma_max: float | None = None,
        s_churn: float = 0.0,
        s_noise: float = 1.0,
    ) -> None:
        # the parent's parameters are spelled out: from_config passes only the keys it sees here
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            interpolation_type=interpolation_type,
            use_karras_sigmas=use_karras_sigmas,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            timestep_spacing=timestep_spacing,
            timestep_type=timestep_type,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            final_sigmas_type=final_sigmas_type,
        )
        self.restoration_target: torch.Tensor | None = None
        #: (step index, σ, weight) of every guided step of the last run, for inspection.
        self.guidance_log: list[tuple[int, float, float]] = []

    @property
    def training_sigma_max(self) -> float:
        """Largest σ of the training schedule: sqrt((1 − ᾱ_T) / ᾱ_T)."""
        last = float(self.alphas_cumprod[-1])
        return math.sqrt((1.0 - last) / last)

    @property
    def sigma_max_for_guidance(self) -> float:
        """The σ_max of the weight (config override, else :attr:`training_sigma_max`)."""
        override = self.config.guidance_sigma_max
        return float(override) if override else self.training_sigma_max

    def set_restoration_target(self, latents: torch.Tensor | None) -> None:
        """Set z, the LQ latent (B, C, h, w) the prediction is pulled toward (None: clear)."""
        self.restoration_target = latents
        self.guidance_log = []

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        s_churn: float | None = None,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> EulerDiscreteSchedulerOutput | tuple:
        """One Euler step with churn; the x0 prediction is pulled toward z (see the module notes).

        With ``restoration_scale`` ≤ 0 or no target this is the parent's step, unchanged.
        """
        s_churn = self.config.s_churn if s_churn is None else s_churn
        s_noise = self.config.s_noise if s_noise is None else s_noise
        scale = float(self.config.restoration_scale)
        if scale <= 0 or self.restoration_target is None:
            return super().step(
                model_output,
                timestep,
                sample,
                s_churn=s_churn,
                s_tmin=s_tmin,
                s_tmax=s_tmax,
                s_noise=s_noise,
                generator=generator,
                return_dict=return_dict,
            )
        if self.step_index is None:
            self._init_step_index(timestep)
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self.step_index]
        sigma_next = self.sigmas[self.step_index + 1]

        # Karras churn: raise the noise level to sigma_hat by adding fresh noise
        gamma = 0.0
        if s_tmin <= sigma <= s_tmax:
            gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1)
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            noise = randn_tensor(
                model_output.shape,
                dtype=model_output.dtype,
                device=model_output.device,
                generator=generator,
            )
            sample = sample + noise * s_noise * (sigma_hat**2 - sigma**2) ** 0.5

        # x0 from the model output
        kind = self.config.prediction_type
        if kind in ("epsilon",):
            x0 = sample - sigma_hat * model_output
        elif kind in ("sample", "original_sample"):
            x0 = model_output.to(torch.float32)
        elif kind == "v_prediction":
            x0 = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        else:
            raise ValueError(f"{type(self).__name__}: unsupported prediction_type {kind!r}")

        # restoration guidance: pull x0 toward the LQ latent z
        if float(sigma_next) > self.config.restoration_sigma_min:
            weight = restoration_weight(float(sigma_hat), self.sigma_max_for_guidance, scale)
            target = self.restoration_target.to(device=x0.device, dtype=x0.dtype)
            x0 = x0 + weight * (target - x0)
            self.guidance_log.append((int(self.step_index), float(sigma_hat), weight))

        derivative = (sample - x0) / sigma_hat
        prev_sample = (sample + derivative * (sigma_next - sigma_hat)).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev_sample, x0
        return EulerDiscreteSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
