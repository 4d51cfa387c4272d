"""The batched torch zoo (restorelab.degradations.torch_ops) against the numpy reference path.

CPU only (a CUDA check runs where a GPU is present). Deterministic ops must match the numpy
output to ≥ 45 dB PSNR after rounding (JPEG: byte for byte); the noise ops and glass blur draw
from torch's generators, so they are compared in distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restorelab.degradations import degrade, get_degradation, list_degradations, torch_ops
from restorelab.degradations.blur import _local_shuffle
from restorelab.degradations.digital import jpeg_roundtrip
from restorelab.degradations.grid import load_grid
from restorelab.degradations.torch_jpeg import jpeg_roundtrip_batch
from restorelab.degradations.torch_ops import (
    TORCH_OPS,
    degrade_batch,
    degrade_batch_uint8,
    local_shuffle_batch,
)
from restorelab.registry import UnknownNameError

ZOO = tuple(load_grid("imagenet-c").degradations)
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
FILTERS = ("gaussian_blur", "defocus_blur", "zoom_blur", "pixelate", "motion_blur")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def to_batch(*images: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) images → float32 (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def trio(astronaut: np.ndarray) -> np.ndarray:
    """Three different 128×128 images: the astronaut, mirrored and transposed."""
    return np.stack([astronaut, astronaut[:, ::-1], astronaut.transpose(1, 0, 2)]).copy()


def test_registry_has_the_numpy_zoo() -> None:
    assert set(TORCH_OPS.names()) == set(ZOO)
    assert set(ZOO) <= set(list_degradations())


@pytest.mark.parametrize("severity", [1, 3, 5, 8])
@pytest.mark.parametrize("name", FILTERS)
def test_filters_match_numpy(astronaut: np.ndarray, name: str, severity: int) -> None:
    # motion_blur: three seeds, so three angles, each drawn as the numpy op draws it
    seeds = [0, 1, 2] if name == "motion_blur" else [0]
    images = np.stack([astronaut] * len(seeds))
    ours = degrade_batch_uint8(images, name, severity, seeds)
    for image, seed, out in zip(images, seeds, ours, strict=True):
        assert psnr(out, degrade(image, name, severity, seed)) >= 45.0


@pytest.mark.parametrize("name", FILTERS)
def test_filters_match_numpy_on_non_square_photos(photos: dict, name: str) -> None:
    for image in photos.values():
        out = degrade_batch_uint8(image[None], name, 6, seeds=3)[0]
        assert psnr(out, degrade(image, name, 6, 3)) >= 45.0


@pytest.mark.parametrize("name", FILTERS)
def test_filters_match_numpy_on_the_smallest_images(astronaut: np.ndarray, name: str) -> None:
    """32×40 px at severity 10: borders far wider than the image, motion taps dropped."""
    image = np.ascontiguousarray(astronaut[40:72, 30:70])
    for seed in (0, 1):
        out = degrade_batch_uint8(image[None], name, 10, seeds=seed)[0]
        assert psnr(out, degrade(image, name, 10, seed)) >= 45.0


@pytest.mark.parametrize("kernel_shape", [(1, 1), (3, 7), (17, 17), (61, 61)])
def test_fft_correlation_equals_conv2d(kernel_shape: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    planes = torch.rand((2, 3, 70, 93), generator=gen)
    kernels = torch.rand((2, 1, *kernel_shape), generator=gen)
    kernels /= kernels.sum(dim=(-2, -1), keepdim=True)
    conv = torch.nn.functional.conv2d
    out_shape = (2, 3, 71 - kernel_shape[0], 94 - kernel_shape[1])
    shared = conv(planes.reshape(6, 1, 70, 93), kernels[:1]).reshape(out_shape)
    grouped = conv(planes.reshape(1, 6, 70, 93), kernels.repeat_interleave(3, 0), groups=6)
    for kernel, expected in ((kernels[0, 0], shared), (kernels, grouped.reshape_as(shared))):
        torch.testing.assert_close(
            torch_ops._correlate_fft(planes, kernel), expected, atol=2e-6, rtol=0
        )


@pytest.mark.parametrize("severity", [1, 3, 5, 8])
@pytest.mark.parametrize("name", NOISE)
def test_noise_statistics_match_numpy(astronaut: np.ndarray, name: str, severity: int) -> None:
    """Residual (degraded - clean) mean and std of both paths agree to 3% of the numpy std.

    Both use 4 seeds × 128² × 3 = 196,608 values of the same photo, so what differs is the
    draw: the standard error of a std is std / sqrt(2N) ≈ 0.16% (≈ 0.5% for impulse noise at
    3% density, whose residual is sparse) and that of a mean std / sqrt(N) ≈ 0.23%. 3% is over
    five standard errors of the difference everywhere, yet well below the ≥ 15% step between
    neighbouring severities, so a wrong level or a wrong formula fails.
    """
    seeds = [0, 1, 2, 3]
    clean = astronaut.astype(np.float64)
    ours = degrade_batch_uint8(np.stack([astronaut] * 4), name, severity, seeds)
    reference = np.stack([degrade(astronaut, name, severity, seed) for seed in seeds])
    r_ours, r_ref = ours - clean, reference - clean
    scale = r_ref.std()
    assert abs(r_ours.std() - scale) <= 0.03 * scale
    assert abs(r_ours.mean() - r_ref.mean()) <= 0.03 * scale


def test_impulse_noise_fractions_match_level() -> None:
    grey = torch.full((2, 3, 64, 64), 0.5)
    out = degrade_batch(grey, "impulse_noise", 5, seeds=[0, 1])
    amount = get_degradation("impulse_noise").level(5)
    for value in (0.0, 1.0):  # half pepper, half salt
        assert abs((out == value).float().mean().item() - amount / 2) < 0.01


def test_noise_field_is_shared_across_severities() -> None:
    """Common random numbers, as in the numpy path: severity scales one field per seed."""
    grey = torch.full((1, 3, 64, 64), 0.5)
    fields = []
    for severity in (1, 2):
        sigma = get_degradation("gaussian_noise").level(severity)
        fields.append((degrade_batch(grey, "gaussian_noise", severity, 4) - 0.5) / sigma)
    inside = (fields[1].abs() * 0.12 < 0.49) & (fields[0].abs() * 0.08 < 0.49)
    torch.testing.assert_close(fields[0][inside], fields[1][inside], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ZOO)
def test_seeds_are_reproducible_and_per_image(trio: np.ndarray, name: str) -> None:
    batch = to_batch(*trio)
    before = batch.clone()
    seeds = [5, 7, 5]
    first = degrade_batch(batch, name, 3, seeds)
    assert torch.equal(batch, before), "the input batch was modified"
    assert torch.equal(first, degrade_batch(batch, name, 3, seeds))
    other = degrade_batch(batch, name, 3, [6, 8, 6])
    if get_degradation(name).stochastic:
        assert not torch.equal(first[0], other[0])
    else:
        assert torch.equal(first, other)
    # each image as if run alone with its own seed
    for i, seed in enumerate(seeds):
        alone = degrade_batch(batch[i : i + 1], name, 3, seed)[0]
        if name in NOISE or name == "jpeg_compression":
            assert torch.equal(first[i], alone)
        else:  # a convolution may block a batch of 3 differently from a batch of 1
            torch.testing.assert_close(first[i], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["gaussian_noise", "motion_blur", "glass_blur"])
def test_int_seed_is_shared_by_every_image(astronaut: np.ndarray, name: str) -> None:
    batch = to_batch(astronaut, astronaut)
    shared = degrade_batch(batch, name, 2, seeds=9)
    assert torch.equal(shared, degrade_batch(batch, name, 2, seeds=[9, 9]))
    if name == "motion_blur":  # a batched FFT need not round both images alike
        torch.testing.assert_close(shared[0], shared[1], atol=1e-6, rtol=0)
    else:
        assert torch.equal(shared[0], shared[1])


@pytest.mark.parametrize("severity", [1, 5, 10])
@pytest.mark.parametrize("name", ["jpeg_compression", "glass_blur"])
def test_cpu_batches_take_the_numpy_path(trio: np.ndarray, name: str, severity: int) -> None:
    seeds = [0, 1, 2]
    expected = np.stack(
        [degrade(image, name, severity, seed) for image, seed in zip(trio, seeds, strict=True)]
    )
    assert np.array_equal(degrade_batch_uint8(trio, name, severity, seeds), expected)
    out = degrade_batch(to_batch(*trio), name, severity, seeds)
    as_uint8 = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(as_uint8, expected)


@pytest.mark.parametrize("severity", [1, 5, 10])
def test_torch_jpeg_equals_numpy_byte_for_byte(trio: np.ndarray, severity: int) -> None:
    """The GPU implementation, run here on the CPU."""
    expected = np.stack([degrade(image, "jpeg_compression", severity) for image in trio])
    out = torch_ops._jpeg_torch(to_batch(*trio), severity, (0, 0, 0))
    as_uint8 = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(as_uint8, expected)


def test_torch_jpeg_is_pillows_codec_on_odd_sizes_and_all_qualities(photos: dict) -> None:
    """Every size modulo 16 and qualities 1-100: the same bytes as Pillow's libjpeg-turbo.

    Photos cropped to 32-63 px per side (all partial-MCU cases: odd, even, multiples of 8
    and 16), random noise (coefficients far from the photo statistics, clamping in the
    decoder) and saturated black/white patterns.
    """
    rng = np.random.default_rng(7)
    sources = list(photos.values())
    images = [
        np.ascontiguousarray(sources[i % len(sources)][: 32 + k, : 63 - k])
        for i, k in enumerate(range(0, 32, 3))
    ]
    images.append(rng.integers(0, 256, (45, 38, 3), dtype=np.uint8))
    images.append((rng.random((40, 50, 3)) > 0.5).astype(np.uint8) * 255)
    for image in images:
        for quality in (1, 2, 7, 25, 50, 75, 90, 95, 100, int(rng.integers(3, 99))):
            expected, _ = jpeg_roundtrip(image, quality)
            batch = torch.from_numpy(image).permute(2, 0, 1)[None]
            out = jpeg_roundtrip_batch(batch, quality)[0].permute(1, 2, 0)
            assert np.array_equal(out.numpy(), expected), (image.shape, quality)


@pytest.mark.parametrize(
    ("delta", "iterations", "size"),
    [(1, 2, (40, 37)), (2, 3, (64, 50)), (4, 2, (33, 90)), (10, 3, (120, 80)), (17, 1, (33, 40))],
)
def test_local_shuffle_batch_replays_the_sequential_loop(
    delta: int, iterations: int, size: tuple[int, int]
) -> None:
    """Given the same offsets, the parallel shuffle equals the numba loop value for value."""
    rng = np.random.default_rng(delta)
    height, width = size
    images = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    shape = (3, iterations, max(0, height - 2 * delta), max(0, width - 2 * delta), 2)
    offsets = rng.integers(-delta, delta, size=shape, dtype=np.int16)
    expected = images.copy()
    for image, image_offsets in zip(expected, offsets, strict=True):
        _local_shuffle(image, image_offsets, delta)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    out = local_shuffle_batch(batch, torch.from_numpy(offsets), delta)
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


@pytest.mark.parametrize("severity", [1, 3, 5, 8, 10])
def test_glass_blur_torch_matches_numpy_in_distribution(
    astronaut: np.ndarray, severity: int
) -> None:
    """The GPU implementation, run here on the CPU: mean PSNR over 4 seeds within 0.3 dB of
    the numpy path (levels are ≥ 0.5 dB apart)."""
    seeds = (0, 1, 2, 3)
    batch = to_batch(*[astronaut] * 4)
    out = torch_ops._glass_blur_torch(batch, severity, seeds).clamp(0, 1)
    ours = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    reference = [degrade(astronaut, "glass_blur", severity, seed) for seed in seeds]
    mean_ours = np.mean([psnr(astronaut, out) for out in ours])
    mean_ref = np.mean([psnr(astronaut, out) for out in reference])
    assert abs(mean_ours - mean_ref) <= 0.3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", ["gaussian_blur", "shot_noise", "jpeg_compression"])
def test_other_float_dtypes(astronaut: np.ndarray, name: str, dtype: torch.dtype) -> None:
    batch = to_batch(astronaut)
    out = degrade_batch(batch.to(dtype), name, 2, seeds=1)
    assert out.dtype == dtype and out.shape == batch.shape and out.device == batch.device
    assert out.min() >= 0 and out.max() <= 1
    reference = degrade_batch(batch.to(dtype).float(), name, 2, seeds=1)
    step = torch.finfo(dtype).eps if dtype != torch.float64 else 0.0
    torch.testing.assert_close(out.float(), reference, atol=step + 1e-6, rtol=0)


def test_output_is_float_and_not_quantised(astronaut: np.ndarray) -> None:
    out = degrade_batch(to_batch(astronaut), "gaussian_blur", 3)
    assert out.dtype == torch.float32
    assert not torch.equal(out, (out * 255).round() / 255)


def test_autograd_input_is_accepted_and_detached(astronaut: np.ndarray) -> None:
    batch = to_batch(astronaut).requires_grad_()
    out = degrade_batch(batch, "defocus_blur", 1)
    assert not out.requires_grad


def test_empty_batch() -> None:
    empty = torch.zeros((0, 3, 32, 32))
    assert degrade_batch(empty, "gaussian_noise", 1, seeds=[]).shape == (0, 3, 32, 32)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (torch.zeros(3, 64, 64), r"shape \(B, 3, H, W\), got \(3, 64, 64\) \(3 dims\)"),
        (torch.zeros(1, 4, 64, 64), r"3 \(RGB\) channels in dim 1, got 4"),
        (torch.zeros(1, 64, 64, 3), r"3 \(RGB\) channels in dim 1, got 64"),
        (torch.zeros(1, 3, 31, 64), r"64x31 px; degradations need at least 32 px"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), r"floating-point.*got dtype torch.uint8"),
        (torch.full((1, 3, 64, 64), 1.5), r"\[0, 1\], got min 1.5, max 1.5"),
        (torch.full((1, 3, 64, 64), -0.25), r"\[0, 1\], got min -0.25"),
        (torch.full((1, 3, 64, 64), float("nan")), r"\[0, 1\], got min nan"),
    ],
)
def test_bad_batches_raise(batch: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        degrade_batch(batch, "gaussian_blur", 1)


def test_bad_arguments_raise() -> None:
    batch = torch.full((3, 3, 32, 32), 0.5)
    with pytest.raises(ValueError, match="got 2 seeds for a batch of 3 images"):
        degrade_batch(batch, "gaussian_noise", 1, seeds=[0, 1])
    with pytest.raises(ValueError, match="non-negative ints, got -1"):
        degrade_batch(batch, "gaussian_noise", 1, seeds=[0, 1, -1])
    with pytest.raises(ValueError, match=r"int or a sequence of ints, got 0\.5"):
        degrade_batch(batch, "gaussian_noise", 1, seeds=0.5)
    with pytest.raises(ValueError, match=r"severity 11 out of range 1\.\.10"):
        degrade_batch(batch, "gaussian_noise", 11)
    with pytest.raises(UnknownNameError, match="Did you mean 'gaussian_noise'"):
        degrade_batch(batch, "gausian_noise", 1)
    with pytest.raises(TypeError, match="use degrade_batch_uint8"):
        degrade_batch(np.zeros((1, 3, 32, 32), np.float32), "gaussian_noise", 1)


def test_bad_uint8_images_raise() -> None:
    with pytest.raises(ValueError, match="uint8 in \\[0, 255\\], got dtype float32"):
        degrade_batch_uint8(np.zeros((1, 32, 32, 3), np.float32), "pixelate", 1)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\), got \(32, 32, 3\).*image\[None\]"):
        degrade_batch_uint8(np.zeros((32, 32, 3), np.uint8), "pixelate", 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ZOO)
def test_cuda_matches_cpu(trio: np.ndarray, name: str) -> None:
    batch = to_batch(*trio)
    out = degrade_batch(batch.cuda(), name, 3, seeds=[0, 1, 2])
    assert out.is_cuda and out.shape == batch.shape and out.dtype == batch.dtype
    if name in NOISE:  # other generator stream: compare residual statistics
        cpu = degrade_batch(batch, name, 3, seeds=[0, 1, 2])
        r_gpu, r_cpu = (out.cpu() - batch), (cpu - batch)
        assert abs(r_gpu.std() - r_cpu.std()) <= 0.03 * r_cpu.std()
    elif name == "glass_blur":  # torch offsets on CUDA: compare mean PSNR
        ours = degrade_batch_uint8(trio, name, 3, [0, 1, 2], device="cuda")
        gaps = [
            psnr(image, result) - psnr(image, degrade(image, name, 3, seed))
            for image, seed, result in zip(trio, [0, 1, 2], ours, strict=True)
        ]
        assert abs(np.mean(gaps)) <= 0.3
    else:
        ours = degrade_batch_uint8(trio, name, 3, [0, 1, 2], device="cuda")
        for image, seed, result in zip(trio, [0, 1, 2], ours, strict=True):
            if name == "jpeg_compression":  # integer codec: the same bytes
                assert np.array_equal(result, degrade(image, name, 3, seed))
            assert psnr(result, degrade(image, name, 3, seed)) >= 45.0
