"""The ``sdxl`` restorer on tiny random-weight SDXL models (CPU, 64×64 images, 2–4 steps).

Random weights make pixels meaningless (the tiny VAE's own round trip is about 14 dB), so
guidance is checked at latent level and against hand computations; end-to-end tests check
shapes, determinism, resumption and that each knob changes (or leaves exactly unchanged) what
it should.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from restorelab.app.cli import main
from restorelab.benchmark import Restorer, create_restorer, run_benchmark
from restorelab.benchmark.restorers import RestoreContext
from restorelab.benchmark.restorers.sdxl.colour import (
    adain_colour_fix,
    colour_fix,
    wavelet_colour_fix,
    wavelet_decompose,
)
from restorelab.benchmark.restorers.sdxl.pipeline import (
    LoraSpec,
    RestorationSettings,
    SDXLRestorationPipeline,
    guidance_scale_at,
    load_presets,
    parse_loras,
    resolve_base,
)
from restorelab.benchmark.restorers.sdxl.scheduler import (
    RestorationEulerScheduler,
    restoration_weight,
)
from restorelab.benchmark.restorers.sdxl.tiling import TiledUNet, gaussian_weights, tiles
from restorelab.degradations.grid import Grid
from restorelab.results import load_results
from restorelab.weights import MissingWeightsError

#: SDXL base 1.0's scheduler (scheduler/scheduler_config.json of stabilityai/sdxl-base-1.0).
SDXL_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def _image(seed: int = 0, height: int = 64, width: int = 64) -> np.ndarray:
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def _settings(**overrides) -> RestorationSettings:
    values = {"steps": 4, "strength": 1.0, "min_side": 0, "colour_fix": "none"}
    return RestorationSettings.from_preset("fidelity", **{**values, **overrides})


@pytest.fixture(scope="module")
def pipe(tiny_sdxl: Path, tiny_loras: dict[str, Path]) -> SDXLRestorationPipeline:
    loras = [f"{name}={path}:1.0" for name, path in tiny_loras.items()]
    return SDXLRestorationPipeline.from_pretrained(tiny_sdxl, loras=loras)


@pytest.fixture(scope="module")
def plain(tiny_sdxl: Path) -> SDXLRestorationPipeline:
    return SDXLRestorationPipeline.from_pretrained(tiny_sdxl)


# --- scheduler: restoration guidance ------------------------------------------------------
def test_sigma_max_is_the_training_schedules() -> None:
    scheduler = RestorationEulerScheduler(**SDXL_SCHEDULER)
    # sqrt((1 - abar_999) / abar_999) for SDXL's scaled-linear betas; SUPIR hard-codes 14.6146
    assert scheduler.sigma_max_for_guidance == pytest.approx(14.6146, abs=1e-4)
    override = RestorationEulerScheduler(**SDXL_SCHEDULER, guidance_sigma_max=10.0)
    assert override.sigma_max_for_guidance == 10.0


def test_guidance_step_matches_a_hand_computation() -> None:
    tau = 0.5
    scheduler = RestorationEulerScheduler(**SDXL_SCHEDULER, restoration_scale=tau)
    scheduler.set_timesteps(4)
    generator = torch.Generator().manual_seed(0)
    shape = (1, 4, 8, 8)
    sample, eps, z = (torch.randn(shape, generator=generator) for _ in range(3))
    scheduler.set_restoration_target(z)
    sigmas = [float(s) for s in scheduler.sigmas]
    for index, timestep in enumerate(scheduler.timesteps):
        sigma, sigma_next = sigmas[index], sigmas[index + 1]
        x0 = sample - sigma * eps
        if sigma_next > 0.05:
            weight = (sigma / 14.614646) ** tau
            x0 = x0 + weight * (z - x0)
        expected = sample + (sample - x0) / sigma * (sigma_next - sigma)
        out = scheduler.step(eps, timestep, sample)
        assert torch.allclose(out.prev_sample, expected, atol=1e-5)
        assert torch.allclose(out.pred_original_sample, x0, atol=1e-5)
        sample = out.prev_sample
    # "leading" 4 steps: σ = 4.12, 1.62, 0.70, 0.04, then 0: steps whose next σ is 0.04 or 0
    # are unguided
    assert [step for step, _, _ in scheduler.guidance_log] == [0, 1]


def test_guidance_off_is_the_parent_step() -> None:
    ours = RestorationEulerScheduler(**SDXL_SCHEDULER, restoration_scale=0.0)
    theirs = RestorationEulerScheduler.__mro__[1](**SDXL_SCHEDULER)
    for scheduler in (ours, theirs):
        scheduler.set_timesteps(3)
    ours.set_restoration_target(torch.ones(1, 4, 4, 4))
    sample = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    for timestep in ours.timesteps:
        a = ours.step(eps, timestep, sample).prev_sample
        b = theirs.step(eps, timestep, sample).prev_sample
        assert torch.equal(a, b)


def test_restoration_weight() -> None:
    assert restoration_weight(14.6, 14.6, 4.0) == 1.0
    assert restoration_weight(7.3, 14.6, 1.0) == pytest.approx(0.5)
    assert restoration_weight(7.3, 14.6, -1.0) == 0.0


def test_guidance_pulls_the_latent_toward_the_lq_latent(pipe: SDXLRestorationPipeline) -> None:
    """Latent-level check (as in the shared notes): a smaller τ ends nearer z."""
    pipe.set_lora_weights({"scene": 0.0, "face": 0.0})
    distance = {}
    for tau in (-1.0, 0.5, 0.01):
        out = pipe([_image()], "x", settings=_settings(restoration_scale=tau), seed=0)
        distance[tau] = float((out.latents - out.lq_latents).pow(2).mean().sqrt())
    assert distance[0.01] < distance[0.5] < distance[-1.0]


def test_guidance_off_equals_the_plain_diffusers_pipeline(
    plain: SDXLRestorationPipeline, tiny_sdxl: Path
) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    settings = _settings(restoration_scale=-1.0, s_churn=0.0, s_cfg=5.0, spt_linear_cfg=5.0)
    ours = plain([_image(3)], "a photo", settings=settings, seed=7)

    reference = StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_sdxl, local_files_only=True)
    reference.scheduler = EulerDiscreteScheduler.from_config(reference.scheduler.config)
    reference.set_progress_bar_config(disable=True)
    theirs = reference(
        prompt=f"a photo, {settings.a_prompt}",
        negative_prompt=settings.n_prompt,
        image=ours.lq_latents,
        strength=1.0,
        num_inference_steps=4,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
        original_size=(64, 64),
        target_size=(64, 64),
    ).images
    assert torch.equal(ours.latents, theirs.float())


# --- linear CFG ------------------------------------------------------------------------
def test_linear_cfg_scale_per_step(pipe: SDXLRestorationPipeline) -> None:
    settings = _settings(s_cfg=4.0, spt_linear_cfg=1.0, timestep_spacing="trailing")
    batches = []
    hook = pipe.pipe.unet.register_forward_pre_hook(lambda m, args: batches.append(len(args[0])))
    try:
        out = pipe([_image()], "x", settings=settings, seed=0)
    finally:
        hook.remove()
    expected = [4.0 + (1.0 - 4.0) * s / 14.614646 for s in out.sigmas]
    assert out.guidance_scales == pytest.approx(expected, abs=1e-4)
    # "trailing" starts at σ_max: scale 1.0, where diffusers would drop the negative branch
    assert out.guidance_scales[0] == pytest.approx(1.0, abs=1e-4)
    assert out.guidance_scales == sorted(out.guidance_scales)
    assert batches == [2] * 4  # both CFG branches at every step, the first included
    assert guidance_scale_at(0.0, 14.6, 7.5, 4.0) == 7.5


# --- LoRA adapters ---------------------------------------------------------------------
def test_lora_weights_change_the_output_and_zero_is_the_base(
    pipe: SDXLRestorationPipeline, plain: SDXLRestorationPipeline
) -> None:
    settings = _settings()
    base = plain([_image()], "x", settings=settings, seed=0).latents
    results = {}
    for weights in ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)):
        pipe.set_lora_weights(dict(zip(("scene", "face"), weights, strict=True)))
        results[weights] = pipe([_image()], "x", settings=settings, seed=0).latents
    assert torch.equal(results[(0.0, 0.0)], base)
    for a, b in (((0.0, 0.0), (1.0, 0.0)), ((1.0, 0.0), (1.0, 1.0)), ((1.0, 1.0), (0.5, 1.0))):
        assert (results[a] - results[b]).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="unknown LoRA adapter"):
        pipe.set_lora_weights({"nope": 1.0})


def test_lora_spec_parsing(tmp_path: Path) -> None:
    assert LoraSpec.parse("scene=/l/a.safetensors:0.8") == LoraSpec(
        "scene", Path("/l/a.safetensors"), 0.8
    )
    assert LoraSpec.parse("face=C:/x/b.safetensors").weight == 1.0
    assert [s.name for s in parse_loras("a=/x:1+b=/y:0.5")] == ["a", "b"]
    with pytest.raises(ValueError, match="NAME=PATH"):
        LoraSpec.parse("/just/a/path")
    with pytest.raises(ValueError, match="unique"):
        parse_loras(["a=/x", "a=/y"])


# --- tiling ----------------------------------------------------------------------------
class _PointwiseUNet(torch.nn.Module):
    """A per-position stand-in for the UNet: tiled and untiled runs must agree exactly."""

    def __init__(self, unet) -> None:
        super().__init__()
        self.real = unet
        self.config = unet.config
        self.add_embedding = unet.add_embedding

    @property
    def dtype(self) -> torch.dtype:
        return self.real.dtype

    @property
    def device(self) -> torch.device:
        return self.real.device

    def forward(self, sample, timestep, *args, return_dict=True, **kwargs):
        return (0.3 * torch.tanh(sample) + 0.01 * float(timestep) / 1000,)


def test_tile_layout_and_weights() -> None:
    assert tiles(24, 16, 16, 8) == [(0, 0, 16, 16), (8, 0, 16, 16)]
    weights = gaussian_weights(16, 16)
    assert weights.shape == (1, 1, 16, 16) and float(weights.max()) <= 1.0
    assert float(weights[0, 0, 0, 0]) == pytest.approx(
        math.exp(-0.5 * (7.5 / 4) ** 2) ** 2, rel=1e-4
    )


def test_tiled_pointwise_model_has_no_seam(plain: SDXLRestorationPipeline) -> None:
    real = plain.pipe.unet
    object.__setattr__(plain.pipe, "unet", _PointwiseUNet(real))
    try:
        # the tiny VAE halves the size: a 64 × 56 image (padded to 64²) is a 32² latent, and
        # tile 24, stride 8 cover it with 2 × 2 overlapping tiles
        image = _image(5, 64, 56)
        untiled = plain([image], "x", settings=_settings(), seed=0)
        tiled = plain([image], "x", settings=_settings(tile=24, tile_stride=8), seed=0)
    finally:
        object.__setattr__(plain.pipe, "unet", real)
    assert torch.allclose(tiled.latents, untiled.latents, atol=1e-5)
    assert np.abs(tiled.images[0].astype(int) - untiled.images[0].astype(int)).max() <= 1


def test_tiled_unet_blends_real_predictions(plain: SDXLRestorationPipeline) -> None:
    tiled = TiledUNet(plain.pipe.unet, tile=24, stride=8)
    calls = []
    hook = plain.pipe.unet.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
    try:
        out = plain([_image(6, 64, 56)], "x", settings=_settings(tile=24, tile_stride=8), seed=0)
    finally:
        hook.remove()
    assert out.images[0].shape == (64, 56, 3)
    assert len(calls) == 4 * 4 and {tuple(c[-2:]) for c in calls} == {(24, 24)}  # 4 steps
    stacked = plain(
        [_image(6, 64, 56)], "x", settings=_settings(tile=24, tile_stride=8, tile_batch=3), seed=0
    )
    assert torch.allclose(stacked.latents, out.latents, atol=1e-4)
    assert torch.isfinite(out.latents).all()
    assert tiled.config is plain.pipe.unet.config  # the pipeline reads the wrapped UNet's config


# --- colour fix --------------------------------------------------------------------------
def test_wavelet_decomposition_and_fix() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1
    high, low = wavelet_decompose(reference)
    assert torch.allclose(high + low, reference, atol=1e-6)
    # a colour cast (a constant per channel) lives in the low band: the fix removes it exactly
    cast = reference + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    assert torch.allclose(wavelet_colour_fix(cast, reference), reference, atol=1e-5)
    # the output's fine detail is kept: (linear bands) fixed − reference = high band of the detail
    detail = torch.zeros_like(reference)
    detail[..., ::2, :] = 0.05
    fixed = wavelet_colour_fix(reference + detail, reference)
    kept = wavelet_decompose(detail)[0]
    assert torch.allclose(fixed - reference, kept, atol=1e-5)
    assert float(kept.abs().mean()) > 0.02


def test_adain_fix_matches_channel_statistics() -> None:
    generator = torch.Generator().manual_seed(1)
    reference = torch.rand(2, 3, 32, 32, generator=generator)
    output = 3.0 * reference - 0.5  # an affine change per channel is undone exactly
    assert torch.allclose(adain_colour_fix(output, reference), reference, atol=1e-4)
    other = torch.rand(2, 3, 32, 32, generator=generator) * 0.2
    fixed = adain_colour_fix(other, reference)
    assert torch.allclose(fixed.mean((2, 3)), reference.mean((2, 3)), atol=1e-5)
    assert torch.allclose(fixed.std((2, 3)), reference.std((2, 3)), atol=1e-3)
    assert torch.equal(colour_fix(other, reference, "none"), other)
    with pytest.raises(ValueError, match="colour_fix"):
        colour_fix(other, reference, "hsv")


# --- presets and settings --------------------------------------------------------------------
def test_presets_carry_supir_values() -> None:
    data = load_presets()
    assert data["prompts"]["n_prompt"].startswith("painting, oil painting")
    assert data["prompts"]["a_prompt"].startswith("Cinematic, High Contrast")
    fidelity = RestorationSettings.from_preset("fidelity")
    assert (fidelity.steps, fidelity.s_cfg, fidelity.spt_linear_cfg) == (50, 4.0, 1.0)
    assert (fidelity.s_churn, fidelity.s_noise) == (5.0, 1.01)
    quality = RestorationSettings.from_preset("quality")
    assert 6.0 <= quality.s_cfg <= 7.5 and 3.0 <= quality.spt_linear_cfg <= 4.0
    fast = RestorationSettings.from_preset("fast", steps=6)
    assert fast.timestep_spacing == "trailing" and fast.steps == 6 and fast.s_cfg <= 2
    with pytest.raises(ValueError, match="preset 'best'"):
        RestorationSettings.from_preset("best")
    with pytest.raises(ValueError, match="strength"):
        _settings(strength=0.0).check()
    with pytest.raises(ValueError, match="multiples of 8"):
        _settings(tile=100).check()


# --- the restorer: options, identity, batches ----------------------------------------------
def _spec(tiny_sdxl: Path, **options) -> str:
    values = {"base": tiny_sdxl, "steps": 2, "strength": 1.0, "min_side": 0, **options}
    return "sdxl:" + ",".join(f"{k}={v}" for k, v in values.items())


def test_restorer_seed_repeat_and_caption(tiny_sdxl: Path) -> None:
    restorer = create_restorer(_spec(tiny_sdxl))
    image = _image(1, 64, 48)
    a = restorer.restore(image, context=RestoreContext("a cat", 3))
    b = restorer.restore(image, context=RestoreContext("a cat", 3))
    c = restorer.restore(image, context=RestoreContext("a cat", 4))
    d = restorer.restore(image, context=RestoreContext("a dog on a boat", 3))
    assert a.shape == image.shape and np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    batch = restorer.restore_batch([image, image[:32]], contexts=[RestoreContext("a cat", 3), None])
    assert np.array_equal(batch[0], a) and batch[1].shape == (32, 48, 3)


def test_restore_batch_stacks_same_size_images(tiny_sdxl: Path) -> None:
    one = create_restorer(_spec(tiny_sdxl))
    two = create_restorer(_spec(tiny_sdxl, batch_size=2))
    images = [_image(1), _image(2)]
    contexts = [RestoreContext("a", 0), RestoreContext("b", 1)]
    singles = one.restore_batch(images, contexts=contexts)
    stacked = two.restore_batch(images, contexts=contexts)
    for s, t in zip(singles, stacked, strict=True):
        assert np.abs(s.astype(int) - t.astype(int)).max() <= 2  # same noise, batched maths


def test_upscale_option(tiny_sdxl: Path) -> None:
    restorer = create_restorer(_spec(tiny_sdxl, upscale=2))
    assert restorer.restore(_image(0, 32, 40)).shape == (64, 80, 3)


def test_config_hash_covers_options_and_files(tiny_sdxl: Path, tmp_path: Path) -> None:
    from tiny_sdxl import save_tiny_lora

    lora = save_tiny_lora(tiny_sdxl, tmp_path / "lora")
    first = create_restorer(_spec(tiny_sdxl, lora=f"scene={lora}:0.5"))
    again = create_restorer(_spec(tiny_sdxl, lora=f"scene={lora}:0.5"))
    assert first.config_hash == again.config_hash
    other_weight = create_restorer(_spec(tiny_sdxl, lora=f"scene={lora}:0.6"))
    assert other_weight.config_hash != first.config_hash
    stat = lora.stat()
    os.utime(lora, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the LoRA file changed
    assert create_restorer(_spec(tiny_sdxl, lora=f"scene={lora}:0.5")).config_hash != (
        first.config_hash
    )
    files = {f["path"] for f in first.config["files"]}
    assert str(lora) in files and any(p.endswith("model_index.json") for p in files)
    assert first.config["settings"]["s_cfg"] == 4.0  # preset values resolved into the config


def test_controlnet_conditions_and_scale_zero_is_img2img(
    tiny_sdxl: Path, tiny_controlnet: Path
) -> None:
    plain = create_restorer(_spec(tiny_sdxl))
    control = create_restorer(_spec(tiny_sdxl, controlnet=tiny_controlnet))
    off = create_restorer(_spec(tiny_sdxl, controlnet=tiny_controlnet, controlnet_scale=0.0))
    image = _image(2)
    base = plain.pipeline([image], "x", settings=plain.settings, seed=0).latents
    with_cn = control.pipeline([image], "x", settings=control.settings, seed=0).latents
    zero = off.pipeline([image], "x", settings=off.settings, seed=0).latents
    assert control.pipeline.has_controlnet
    # scale 0 adds zero residuals: img2img up to float rounding of the other pipeline's path
    assert torch.allclose(zero, base, atol=1e-3)
    assert (with_cn - base).abs().mean() > 100 * (zero - base).abs().mean()


def test_controlnet_with_tiling(tiny_sdxl: Path, tiny_controlnet: Path) -> None:
    restorer = create_restorer(_spec(tiny_sdxl, controlnet=tiny_controlnet, tile=24, tile_stride=8))
    out = restorer.restore(_image(4, 64, 56))
    assert out.shape == (64, 56, 3)


def _tiny_union(base: Path, folder: Path, control_types: int) -> Path:
    """A tiny ControlNet-Union with ``control_types`` modes (ProMax has 8, tile = 6)."""
    import inspect

    from diffusers import ControlNetUnionModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base / "unet", local_files_only=True)
    template = ControlNetUnionModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    params = inspect.signature(ControlNetUnionModel.__init__).parameters
    config = {k: v for k, v in template.config.items() if k in params}
    config.update(
        num_control_type=control_types, num_trans_channel=32, num_proj_channel=32, num_trans_head=4
    )
    model = ControlNetUnionModel(**config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(k in name for k in ("zero", "controlnet_", "spatial_ch_projs")):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.save_pretrained(folder)
    return folder


def test_controlnet_union_in_tile_mode(tiny_sdxl: Path, tmp_path: Path) -> None:
    promax = _tiny_union(tiny_sdxl, tmp_path / "promax", 8)
    restorer = create_restorer(_spec(tiny_sdxl, controlnet=promax))
    plain = create_restorer(_spec(tiny_sdxl))
    image = _image(2)
    union = restorer.pipeline([image], "x", settings=restorer.settings, seed=0).latents
    base = plain.pipeline([image], "x", settings=plain.settings, seed=0).latents
    assert type(restorer.pipeline.pipe).__name__ == "_UnionImg2Img"
    assert (union - base).abs().mean() > 1e-3
    six = _tiny_union(tiny_sdxl, tmp_path / "six", 6)
    with pytest.raises(ValueError, match="no tile mode"):
        create_restorer(_spec(tiny_sdxl, controlnet=six)).pipeline  # noqa: B018


# --- missing weights: one line naming the path and the fix -------------------------------------
def test_missing_weight_messages(
    tiny_sdxl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MissingWeightsError, match=r"/nowhere/sdxl is not a folder.*download"):
        resolve_base("/nowhere/sdxl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingWeightsError, match=r"no model_index\.json"):
        resolve_base(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="missing unet, vae"):
        resolve_base(broken)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError, match="nor in the local HF cache"):
        resolve_base("stabilityai/stable-diffusion-xl-base-1.0")
    with pytest.raises(MissingWeightsError, match=r"LoRA 'scene' not found: /no/l.safetensors"):
        create_restorer("sdxl", base=str(tiny_sdxl), lora="scene=/no/l.safetensors")
    with pytest.raises(MissingWeightsError, match=r"holds no \.safetensors file"):
        create_restorer("sdxl", base=str(tiny_sdxl), lora=f"scene={empty}")
    with pytest.raises(MissingWeightsError, match="ControlNet not found: /no/cn"):
        create_restorer("sdxl", base=str(tiny_sdxl), controlnet="/no/cn")
    monkeypatch.delenv("RESTORELAB_SDXL_BASE", raising=False)
    with pytest.raises(MissingWeightsError, match="Stable Diffusion XL base"):
        create_restorer("sdxl")


def test_cli_missing_base_is_one_line(tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    Image.fromarray(_image()).save(image)
    result = CliRunner().invoke(
        main, ["restore", str(image), str(tmp_path / "out.png"), "--base", "/no/sdxl"]
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "/no/sdxl" in lines[0] and "huggingface-cli download" in lines[0]
    assert "Traceback" not in result.output


def test_doctor_lists_sdxl_weights(tiny_sdxl: Path, tmp_path: Path, monkeypatch) -> None:
    from restorelab.app.doctor import run_checks

    monkeypatch.setenv("RESTORELAB_SDXL_BASE", str(tiny_sdxl))
    monkeypatch.setenv("RESTORELAB_SDXL_CONTROLNET", str(tmp_path / "none"))
    checks = {c.name: c for c in run_checks() if c.section == "weights"}
    assert checks["sdxl-base"].ok and str(tiny_sdxl) in checks["sdxl-base"].detail
    assert (
        not checks["sdxl-controlnet-tile"].ok
        and "--controlnet" in checks["sdxl-controlnet-tile"].fix
    )
    assert "sdxl-lora" in checks
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{}")
    monkeypatch.setenv("RESTORELAB_SDXL_BASE", str(broken))
    check = {c.name: c for c in run_checks()}["sdxl-base"]
    assert not check.ok and "incomplete (missing unet" in check.detail


# --- restore CLI ---------------------------------------------------------------------------
def test_restore_cli_file_and_folder(
    tiny_sdxl: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    Image.fromarray(_image(1, 64, 48)).save(source / "a.png")
    Image.fromarray(_image(2, 40, 64)).save(source / "sub" / "b.jpg")
    (source / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": "a red door"}) + "\n"
    )
    common = ["--base", str(tiny_sdxl), "--steps", "2", "--min-side", "0", "--device", "cpu"]
    common += ["--strength", "1.0", "--lora", f"scene={tiny_loras['scene']}:0.8"]
    runner = CliRunner()

    first = runner.invoke(main, ["restore", str(source), str(tmp_path / "out"), *common])
    assert first.exit_code == 0, first.output
    outputs = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert outputs == ["a.png", "sub/b.png"]
    assert Image.open(tmp_path / "out" / "sub" / "b.png").size == (64, 40)
    again = runner.invoke(main, ["restore", str(source), str(tmp_path / "out"), *common])
    assert "0 restored, 2 already done" in again.output

    single = [str(source / "a.png")]
    one = runner.invoke(main, ["restore", *single, str(tmp_path / "one.png"), *common])
    two = runner.invoke(main, ["restore", *single, str(tmp_path / "two.png"), *common])
    assert one.exit_code == 0 and two.exit_code == 0, one.output
    same = (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert same  # same seed, same device: same bytes
    # the folder run read the caption of a.png from its metadata.jsonl; so does --captions
    captions = ["--captions", str(source / "metadata.jsonl")]
    runner.invoke(main, ["restore", *single, str(tmp_path / "cap.png"), *common, *captions])
    assert (tmp_path / "out" / "a.png").read_bytes() == (tmp_path / "cap.png").read_bytes()
    assert (tmp_path / "cap.png").read_bytes() != (tmp_path / "one.png").read_bytes()
    heavier = [*common[:-1], f"scene={tiny_loras['scene']}:0.0"]
    changed = runner.invoke(main, ["restore", *single, str(tmp_path / "w0.png"), *heavier])
    assert changed.exit_code == 0
    assert (tmp_path / "w0.png").read_bytes() != (tmp_path / "one.png").read_bytes()
    assert Image.open(tmp_path / "one.png").size == (48, 64)


def test_restore_cli_upscale(tiny_sdxl: Path, tmp_path: Path) -> None:
    Image.fromarray(_image(0, 32, 32)).save(tmp_path / "in.png")
    args = ["restore", str(tmp_path / "in.png"), str(tmp_path / "x2.png"), "--base", str(tiny_sdxl)]
    result = CliRunner().invoke(main, [*args, "--steps", "2", "--min-side", "0", "--upscale", "2"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "x2.png").size == (64, 64)


# --- the benchmark -------------------------------------------------------------------------
class _ContextRecorder(Restorer):
    name = "context_recorder"
    wants_context = True
    seen: ClassVar[list] = []

    def restore_array(self, image: np.ndarray, *, context: RestoreContext | None) -> np.ndarray:
        type(self).seen.append(context)
        return image.copy()


def _captioned_corpus(folder: Path) -> Path:
    folder.mkdir()
    rows = []
    for index, caption in enumerate(("a red door", "a green field")):
        Image.fromarray(_image(index)).save(folder / f"img{index}.png")
        rows.append(json.dumps({"file_name": f"img{index}.png", "text": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_runner_passes_caption_and_seed(tmp_path: Path) -> None:
    corpus = _captioned_corpus(tmp_path / "corpus")
    grid = Grid(name="g", degradations=["gaussian_noise"], severities=[1], seeds=[0, 5])
    _ContextRecorder.seen = []
    run_benchmark(corpus, grid, [_ContextRecorder()], tmp_path / "run", progress=False)
    seen = {(c.image_id, c.caption, c.seed) for c in _ContextRecorder.seen}
    assert seen == {
        ("img0", "a red door", 0),
        ("img0", "a red door", 5),
        ("img1", "a green field", 0),
        ("img1", "a green field", 5),
    }


def test_bench_with_sdxl_writes_finite_rows_and_resumes(tiny_sdxl: Path, tmp_path: Path) -> None:
    corpus = _captioned_corpus(tmp_path / "corpus")
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: g\ndegradations: [gaussian_blur]\nseverities: [1, 2]\nseeds: [0]\n")
    spec = _spec(tiny_sdxl, preset="fast", steps=2)
    args = ["bench", "--corpus", str(corpus), "--grid", str(grid), "--restorer", spec]
    args += ["--out", str(tmp_path / "run"), "--device", "cpu", "--save-images"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "reused 0 finished rows, added 4 rows, refused nothing" in first.output
    frame = load_results(tmp_path / "run")
    assert len(frame) == 4 and np.isfinite(frame["psnr"]).all() and (frame["error"] == "").all()
    assert frame["restorer"].str.startswith("sdxl:").all()
    assert (frame["restored_file"] != "").all()
    config = json.loads(frame["restorer_config"].iloc[0])
    assert config["settings"]["timestep_spacing"] == "trailing" and config["files"]
    second = CliRunner().invoke(main, args)
    assert "reused 4 finished rows, added 0 rows" in second.output
    spec = json.loads((tmp_path / "run" / "run.json").read_text())["spec"]
    assert any(p.endswith("model_index.json") for p in spec["restorers"][0]["files"])


def test_list_shows_sdxl_options() -> None:
    result = CliRunner().invoke(main, ["list"])
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "sdxl")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    block = " ".join(lines[start:end])  # its description and wrapped options
    for option in ("base", "lora", "controlnet", "restoration_scale", "spt_linear_cfg", "tile"):
        assert f" {option}=" in block
