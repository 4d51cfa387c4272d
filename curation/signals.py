"""Full-resolution quality signals for curating a corpus of high-quality photographs.

Every signal is a small pure function on arrays; :func:`compute_signals` computes them all for a
:class:`~restorelab.imageio.DecodedImage`, working out the 8-bit luma once and sharing it.
Nothing is computed on a thumbnail: mild defocus (a Gaussian of σ = 1–1.5 px on a 4000-px
photo) is invisible at 64 px and only shows at full resolution.

Luma is BT.601 Y' (0.299 R + 0.587 G + 0.114 B) rounded to ``uint8``, as OpenCV's and Pillow's
RGB → grey conversions compute it. On a 4000×3000 photo all signals take about 0.16 s on one
core (OpenCV with one thread), half of it :func:`sharpness`.

:data:`SIGNAL_DEFAULT_THRESHOLDS` suggests a threshold per signal, each with its rationale and
the measurement it came from.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import cv2
import numpy as np

from restorelab.imageio import DecodedImage
from restorelab.jpeg import ZIGZAG_TO_NATURAL, ijg_tables

Signals = dict[str, float | int | bool | str | None]

#: Luma at or below this value counts as clipped to black.
DARK_CLIP_LEVEL = 2
#: Luma at or above this value counts as clipped to white.
BRIGHT_CLIP_LEVEL = 253
#: Largest per-pixel channel spread (max − min of R, G, B) that still counts as grey.
GREY_TOLERANCE = 3
#: Share of pixels that must be grey within :data:`GREY_TOLERANCE` for a grey image.
GREY_SHARE = 0.995

# ---------------------------------------------------------------------------------------------
# Luma and its histogram
# ---------------------------------------------------------------------------------------------


def luma(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB ``uint8`` (H, W, 3) image as ``uint8`` (H, W).

    Examples
    --------
    >>> luma(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)).tolist()
    [[76, 150, 29]]
    """
    return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)


def _histogram256(values: np.ndarray) -> np.ndarray:
    """Counts of the 256 levels of a 2-D ``uint8`` array (``int64``, shape (256,))."""
    counts = cv2.calcHist([np.ascontiguousarray(values)], [0], None, [256], [0, 256])
    return np.rint(counts.ravel()).astype(np.int64)


def luma_histogram(luma8: np.ndarray) -> np.ndarray:
    """Counts of the 256 luma levels of a ``uint8`` (H, W) array (``int64``, shape (256,))."""
    return _histogram256(luma8)


# ---------------------------------------------------------------------------------------------
# Sharpness
# ---------------------------------------------------------------------------------------------

#: σ (px) of the Gaussian re-blur that :func:`sharpness` compares against.
REBLUR_SIGMA = 2.0
#: Share of the edge points, the strongest by re-blurred gradient, that :func:`sharpness` uses.
EDGE_SHARE = 0.10
#: Smallest re-blurred gradient (grey levels per px) at an edge point.
MIN_EDGE_GRADIENT = 2.0


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude in grey levels per pixel (float32)."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return cv2.magnitude(gx, gy, magnitude=gx)  # in place: one full-size array fewer at the peak


def _sobel_magnitude_at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """:func:`_gradient_magnitude` at interior pixels only, given by flat index (float32)."""
    flat, w = image.ravel(), image.shape[1]
    up, down = points - w, points + w
    gx = flat[up + 1] + 2 * flat[points + 1] + flat[down + 1]
    gx -= flat[up - 1] + 2 * flat[points - 1] + flat[down - 1]
    gy = flat[down - 1] + 2 * flat[down] + flat[down + 1]
    gy -= flat[up - 1] + 2 * flat[up] + flat[up + 1]
    return np.hypot(gx, gy) * np.float32(0.125)


def sharpness(
    luma_image: np.ndarray,
    *,
    reblur_sigma: float = REBLUR_SIGMA,
    edge_share: float = EDGE_SHARE,
    min_edge_gradient: float = MIN_EDGE_GRADIENT,
) -> float:
    """Edge sharpness at full resolution: the gradient ratio of the image to its re-blurred copy.

    The luma is re-blurred with a Gaussian of σ₀ = ``reblur_sigma`` px. Edge points are the
    ridge pixels (3×3 local maxima) of the re-blurred gradient magnitude; of those above
    ``min_edge_gradient`` the strongest ``edge_share`` are kept, and the signal is the median,
    over them, of ``|∇Y| / |∇(G_σ₀ * Y)|`` (Zhuo & Sim 2011). At a step edge blurred by a
    Gaussian of σ px the ratio is ``r = sqrt((σ² + σ₀² + a) / (σ² + a))``, where ``a ≈ 0.4 px²``
    is the Sobel operator's own smoothing plus pixel sampling; the edge blur is therefore
    ``σ ≈ sqrt(σ₀² / (r² − 1) − a)``.

    Parameters
    ----------
    luma_image : ndarray, shape (H, W)
        Luma in 0–255 (``uint8`` or ``float32``; other types are converted to ``float32``).
    reblur_sigma : float, keyword-only
        σ₀ of the re-blur, in pixels.
    edge_share : float, keyword-only
        Share (0–1] of the edge points, strongest first, that the median runs over.
    min_edge_gradient : float, keyword-only
        Weakest re-blurred gradient, grey levels per pixel, that counts as an edge.

    Returns
    -------
    float
        The ratio: 1 for no fine detail at all, about 2.7 for pixel-sharp (anti-aliased) step
        edges; 0.0 when the image has no edge points (flat). Measured on supersampled step
        edges: 2.70 (σ = 0), 2.49 (0.5), 1.93 (1.0), 1.58 (1.5), 1.38 (2.0), 1.19 (3.0). The
        four scikit-image photos at native resolution give 1.74–2.54, a sharp 4096×3072 mosaic
        of them 2.48; blurred by σ = 1.0 px they give 1.58–1.82, by σ = 1.5 px 1.43–1.53.
        Suggested "too blurry" threshold: below 1.6 (see :data:`SIGNAL_DEFAULT_THRESHOLDS`).

    Notes
    -----
    Contrast does not matter (the ratio cancels it), so the value compares across contents
    better than gradient energies or Laplacian variances; texture, noise and JPEG blocking
    matter little because only the strongest edges count (added Gaussian noise of σ = 20 moves
    a sharp mosaic from 2.48 to 2.49). The value is per full-resolution pixel: the same scene
    at twice the pixel count has edges twice as wide in pixels and scores lower, which is what
    matters when restorers train on native-resolution crops. Photographs with a small sharp
    subject on a defocused background still score by their sharp edges, as those are the
    strongest.

    References
    ----------
    .. [1] S. Zhuo and T. Sim, "Defocus map estimation from a single image", Pattern
       Recognition 44(9), 1852–1858, 2011. :doi:`10.1016/j.patcog.2011.03.009`

    Examples
    --------
    >>> yy, xx = np.mgrid[:256, :256]
    >>> disc = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 80**2, 220, 30).astype(np.uint8)
    >>> round(sharpness(disc), 1), round(sharpness(cv2.GaussianBlur(disc, (0, 0), 1.5)), 1)
    (2.9, 1.6)
    >>> sharpness(np.zeros((64, 64), np.uint8))
    0.0
    """
    image = np.ascontiguousarray(luma_image, dtype=np.float32)
    h, w = image.shape
    if h < 3 or w < 3:
        return 0.0
    blurred = cv2.GaussianBlur(image, (0, 0), reblur_sigma)
    coarse = _gradient_magnitude(blurred)
    del blurred
    # ridge points: 3×3 local maxima at or above min_edge_gradient, i.e. at or above
    # max(3×3 maximum, min_edge_gradient): one OpenCV mask of 0/255, fewer passes over the
    # image than NumPy comparisons
    floor = cv2.dilate(coarse, np.ones((3, 3), np.uint8))
    cv2.max(floor, float(min_edge_gradient), dst=floor)
    ridge = cv2.compare(coarse, floor, cv2.CMP_GE)
    del floor
    cv2.min(ridge, 1, dst=ridge)  # 0/1, read as booleans (NumPy's nonzero is 8× faster so)
    ridge[[0, -1], :] = 0
    ridge[:, [0, -1]] = 0
    points = np.flatnonzero(ridge.view(bool))
    if points.size == 0:
        return 0.0
    strength = coarse.ravel()[points]
    keep = strength >= np.quantile(strength, 1.0 - edge_share)
    points, strength = points[keep], strength[keep]
    return float(np.median(_sobel_magnitude_at(image, points) / strength))


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------

#: Immerkær's operator: the difference of two Laplacians, blind to any f(x) + g(y).
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
#: Side of the square blocks over which :func:`noise_sigma` averages, px.
NOISE_BLOCK = 16
#: Percentile of the block estimates that :func:`noise_sigma` reports.
NOISE_PERCENTILE = 10.0
#: 10th percentile of the 16×16-block estimates over the true σ for white Gaussian noise:
#: 0.8917 ± 0.0002, measured on four 4096×3072 float fields of σ = 10.
_NOISE_PERCENTILE_BIAS = 0.8917
#: Blocks whose mean luma lies outside this range are skipped (clipping hides noise).
NOISE_LUMA_RANGE = (16.0, 240.0)


def noise_sigma(
    luma_image: np.ndarray,
    *,
    block: int = NOISE_BLOCK,
    percentile: float = NOISE_PERCENTILE,
) -> float:
    """Standard deviation of additive white noise on the luma, in grey levels (0–255).

    Immerkær's operator ``M`` (the difference of two 3×3 Laplacians, ‖M‖₂ = 6) removes
    anything of the form f(x) + g(y), so on white Gaussian noise of σ the response is
    N(0, 36σ²) and ``σ = sqrt(π/2) · mean|Y * M| / 6``. Texture and edges raise that mean, so it
    is taken per ``block`` × ``block`` block and the ``percentile``-th percentile over the
    blocks is reported — the smoothest parts of the picture, where only noise is left —
    divided by that percentile's bias on pure noise (0.892 for the defaults). Blocks whose
    mean luma is outside :data:`NOISE_LUMA_RANGE` are skipped, as clipping flattens noise.

    Parameters
    ----------
    luma_image : ndarray, shape (H, W)
        Luma in 0–255 (``uint8`` or ``float32``).
    block : int, keyword-only
        Side of the blocks, pixels.
    percentile : float, keyword-only
        Percentile (0–100) of the block estimates to report; the bias correction is
        calibrated for the defaults only.

    Returns
    -------
    float
        σ in grey levels of luma, ≥ 0. Independent noise of σ per RGB channel gives
        σ · 0.668 on the luma (the norm of the BT.601 weights); the same noise on all three
        channels gives σ. Clean scikit-image photos measure 0.2–1.3; with added grey
        Gaussian noise of σ = 5, 10, 20 they measure within about 10 % of it.

    Notes
    -----
    An image without any smooth block (a close-up of foliage, say) still reads high, as its
    smoothest blocks hold texture. Images smaller than ``block + 2`` pixels a side use
    Immerkær's global mean.

    References
    ----------
    .. [1] J. Immerkær, "Fast noise variance estimation", Computer Vision and Image
       Understanding 64(2), 300–302, 1996. :doi:`10.1006/cviu.1996.0060`

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy = np.clip(128 + rng.normal(0, 10, (512, 512)), 0, 255).astype(np.uint8)
    >>> round(noise_sigma(noisy))
    10
    """
    image = np.ascontiguousarray(luma_image, dtype=np.float32)
    h, w = image.shape[0] - 2, image.shape[1] - 2
    if h < 1 or w < 1:
        return 0.0
    response = cv2.filter2D(image, -1, _IMMERKAER)
    response = np.abs(response, out=response)[1:-1, 1:-1]
    scale = math.sqrt(math.pi / 2.0) / 6.0
    bh, bw = h // block, w // block
    if bh == 0 or bw == 0:
        return float(response.mean(dtype=np.float64) * scale)
    size = (bw, bh)
    crop = (slice(0, bh * block), slice(0, bw * block))
    per_block = cv2.resize(response[crop], size, interpolation=cv2.INTER_AREA)
    block_luma = cv2.resize(image[1:-1, 1:-1][crop], size, interpolation=cv2.INTER_AREA)
    low, high = NOISE_LUMA_RANGE
    usable = (block_luma >= low) & (block_luma <= high)
    values = per_block[usable] if usable.any() else per_block.ravel()
    bias = _NOISE_PERCENTILE_BIAS if (block, percentile) == (NOISE_BLOCK, NOISE_PERCENTILE) else 1
    return float(np.percentile(values, percentile) * scale / bias)


# ---------------------------------------------------------------------------------------------
# JPEG quality from the quantisation tables
# ---------------------------------------------------------------------------------------------

#: All IJG tables, shape (2 baseline/extended, 100 qualities, 2 luma/chroma, 64).
_IJG_ALL = np.array(
    [[ijg_tables(q, baseline=b) for q in range(1, 101)] for b in (True, False)], dtype=np.int64
)

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_quantization_tables(encoded: bytes) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Quantisation tables of a JPEG file: (luma table, chroma tables), natural order.

    Reads the DQT and SOF segments up to the first scan; the luma table is the one the first
    frame component uses, the chroma tables those of the others (none for grey JPEGs). Returns
    ``None`` for anything that is not a JPEG with both.
    """
    data = memoryview(encoded)
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    tables: dict[int, np.ndarray] = {}
    components: list[int] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan
            break
        length = (data[pos + 2] << 8) | data[pos + 3]
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xDB:
            i = 0
            while i < len(segment):
                precision, table_id = segment[i] >> 4, segment[i] & 0x0F
                size = 128 if precision else 64
                raw = np.frombuffer(
                    segment[i + 1 : i + 1 + size], dtype=">u2" if precision else "u1"
                )
                if raw.size != 64:
                    return None
                table = np.empty(64, dtype=np.int64)
                table[ZIGZAG_TO_NATURAL] = raw
                tables[table_id] = table
                i += 1 + size
        elif marker in _SOF_MARKERS and len(segment) >= 6:
            count = segment[5]
            components = [segment[6 + 3 * k + 2] for k in range(count) if 8 + 3 * k < len(segment)]
        pos += 2 + length
    if not components or any(c not in tables for c in components):
        return None
    luma_id = components[0]
    chroma_ids = sorted({c for c in components[1:] if c != luma_id})
    return tables[luma_id], [tables[c] for c in chroma_ids]


@dataclass(frozen=True)
class JpegQuality:
    """Result of :func:`jpeg_quality`.

    ``quality`` is the IJG quality (1–100) whose tables match best; ``table_error`` the mean
    absolute difference, in quantiser steps per coefficient, between the file's tables and
    those; ``nonstandard`` is True when they are not exactly a scaled IJG table (camera,
    Photoshop, mozjpeg or hand-made tables), in which case ``quality`` is only the nearest
    equivalent.
    """

    quality: int
    nonstandard: bool
    table_error: float


def jpeg_quality(encoded: bytes) -> JpegQuality | None:
    """Estimate the IJG quality a JPEG file was saved with, from its quantisation tables.

    Every IJG quality 1–100 is tried, with baseline (≤ 255) and extended (≤ 32767) clamping,
    its tables built by libjpeg's formula from the ITU-T T.81 Annex K tables
    (:func:`restorelab.jpeg.ijg_tables`); the one with the smallest mean absolute difference
    over the luma table and the chroma tables wins.

    Parameters
    ----------
    encoded : bytes
        The file's bytes.

    Returns
    -------
    JpegQuality or None
        None when ``encoded`` is not a JPEG (PNG, WebP, ...) or has no usable tables.

    References
    ----------
    .. [1] ITU-T T.81 | ISO/IEC 10918-1, "Digital compression and coding of continuous-tone
       still images", Annex K.1, 1992.
    .. [2] Independent JPEG Group, libjpeg ``jcparam.c``: ``jpeg_quality_scaling`` and
       ``jpeg_add_quant_table``.
    """
    found = jpeg_quantization_tables(encoded)
    if found is None:
        return None
    luma_table, chroma_tables = found
    diff = np.abs(_IJG_ALL[:, :, 0, :] - luma_table).sum(axis=-1)
    for table in chroma_tables:
        diff += np.abs(_IJG_ALL[:, :, 1, :] - table).sum(axis=-1)
    error = diff / (64.0 * (1 + len(chroma_tables)))
    clamp, index = np.unravel_index(int(np.argmin(error)), error.shape)
    best = float(error[clamp, index])
    return JpegQuality(quality=int(index) + 1, nonstandard=best > 0.0, table_error=best)


# ---------------------------------------------------------------------------------------------
# Exposure, colour, information
# ---------------------------------------------------------------------------------------------


def clipped_fractions(
    histogram: np.ndarray, *, dark: int = DARK_CLIP_LEVEL, bright: int = BRIGHT_CLIP_LEVEL
) -> tuple[float, float]:
    """Shares (0–1) of pixels with luma ≤ ``dark`` and ≥ ``bright`` (exposure clipping).

    Parameters
    ----------
    histogram : ndarray, shape (256,)
        Luma histogram (:func:`luma_histogram`).
    dark, bright : int, keyword-only
        Luma levels at or beyond which a pixel counts as clipped.

    Returns
    -------
    (float, float)
        Share of crushed shadows and of blown highlights.

    Examples
    --------
    >>> clipped_fractions(luma_histogram(np.array([[0, 1, 128, 255]], np.uint8)))
    (0.5, 0.25)
    """
    total = max(1, int(histogram.sum()))
    return int(histogram[: dark + 1].sum()) / total, int(histogram[bright:].sum()) / total


def colourfulness(pixels: np.ndarray) -> float:
    """Hasler and Süsstrunk's colourfulness of an RGB ``uint8`` image.

    With ``rg = R − G`` and ``yb = (R + G)/2 − B`` over all pixels,
    ``M = sqrt(σ_rg² + σ_yb²) + 0.3 · sqrt(μ_rg² + μ_yb²)``.

    Returns
    -------
    float
        M ≥ 0, in 0–255 units: 0 for grey images. The authors' scale: 15 slightly, 33
        moderately, 45 averagely, 59 quite, 82 highly, 109 extremely colourful.

    References
    ----------
    .. [1] D. Hasler and S. Süsstrunk, "Measuring colourfulness in natural images", Proc.
       SPIE 5007, Human Vision and Electronic Imaging VIII, 87–95, 2003.
       :doi:`10.1117/12.477378`

    Examples
    --------
    >>> colourfulness(np.full((4, 4, 3), 128, np.uint8))
    0.0
    >>> round(colourfulness(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)), 1)
    272.6
    """
    return _colourfulness(*_channels(pixels))


def _channels(pixels: np.ndarray) -> list[np.ndarray]:
    """The R, G and B planes of an RGB image as contiguous ``uint8`` arrays."""
    return cv2.split(np.ascontiguousarray(pixels))


def _colourfulness(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> float:
    # Exact integer moments, without a signed copy of the image: Σ(R − G)² and the other two
    # squared channel differences are OpenCV norms of the uint8 planes, and
    # Σ(R + G − 2B)² = 2 Σ(R − B)² + 2 Σ(G − B)² − Σ(R − G)².
    count = red.size
    if count == 0:
        return 0.0
    sum_r, sum_g, sum_b = (float(cv2.sumElems(plane)[0]) for plane in (red, green, blue))
    sq_rg = cv2.norm(red, green, cv2.NORM_L2SQR)
    sq_rb = cv2.norm(red, blue, cv2.NORM_L2SQR)
    sq_gb = cv2.norm(green, blue, cv2.NORM_L2SQR)
    mean_rg = (sum_r - sum_g) / count
    mean_yb2 = (sum_r + sum_g - 2.0 * sum_b) / count  # of 2·yb
    var_rg = max(sq_rg / count - mean_rg * mean_rg, 0.0)
    var_yb = max((2.0 * sq_rb + 2.0 * sq_gb - sq_rg) / count - mean_yb2 * mean_yb2, 0.0) / 4.0
    return math.hypot(math.sqrt(var_rg), math.sqrt(var_yb)) + 0.3 * math.hypot(
        mean_rg, mean_yb2 / 2.0
    )


def entropy(histogram: np.ndarray) -> float:
    """Shannon entropy of a histogram, in bits: 0 (one level) to 8 (all 256 levels equally).

    Low values mark low-information images: flat colours, graphics, screenshots.

    References
    ----------
    .. [1] C. E. Shannon, "A mathematical theory of communication", Bell System Technical
       Journal 27(3), 379–423, 1948. :doi:`10.1002/j.1538-7305.1948.tb01338.x`

    Examples
    --------
    >>> entropy(np.array([100, 0, 0, 0]))
    0.0
    >>> entropy(np.ones(256))
    8.0
    """
    counts = np.asarray(histogram, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size <= 1:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def channel_spread(pixels: np.ndarray, *, share: float = GREY_SHARE) -> int:
    """How far from grey the pixels are: the ``share`` quantile of max(R,G,B) − min(R,G,B).

    Parameters
    ----------
    pixels : ndarray of uint8, shape (H, W, 3)
        RGB image.
    share : float, keyword-only
        Quantile (0–1] of the per-pixel spread to report; the default ignores the 0.5 % most
        colourful pixels (a logo, a coloured caption).

    Returns
    -------
    int
        Spread in grey levels, 0–255: 0 when all but 0.5 % of the pixels have R = G = B.
        The image is grey when it is at most :data:`GREY_TOLERANCE`.

    Examples
    --------
    >>> grey = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    >>> channel_spread(grey)
    0
    """
    return _channel_spread(*_channels(pixels), share=share)


def _channel_spread(
    red: np.ndarray, green: np.ndarray, blue: np.ndarray, *, share: float = GREY_SHARE
) -> int:
    return _spread_level(_histogram256(_spread_image(red, green, blue)), share)


def _spread_image(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """max(R, G, B) − min(R, G, B) per pixel (``uint8``)."""
    return cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))


def _spread_level(histogram: np.ndarray, share: float = GREY_SHARE) -> int:
    """The ``share`` quantile of a spread histogram (see :func:`channel_spread`)."""
    cumulative = np.cumsum(histogram)
    return int(np.searchsorted(cumulative, share * cumulative[-1] - 1e-9))


def is_grayscale(spread: int, *, tolerance: int = GREY_TOLERANCE) -> bool:
    """True when a :func:`channel_spread` of ``spread`` means a grey picture (whatever mode)."""
    return spread <= tolerance


# ---------------------------------------------------------------------------------------------
# Everything at once
# ---------------------------------------------------------------------------------------------

_JPEG_FORMATS = frozenset({"JPEG", "MPO"})


def compute_signals(
    decoded: DecodedImage,
    encoded: bytes | None = None,
    *,
    channel_histograms: list | None = None,
) -> Signals:
    """All quality signals of one decoded image, at full resolution.

    Parameters
    ----------
    decoded : DecodedImage
        The decoded image (RGB ``uint8`` pixels after EXIF orientation).
    encoded : bytes, optional
        The file's bytes, for the JPEG signals; without them those are None.
    channel_histograms : list, optional, keyword-only
        When given, the 256-level histograms of R, G and B (float32 arrays, shape (256,))
        are appended to it, from the colour planes this function splits anyway (for
        :func:`restorelab.curation.provenance.tone_comb_of_histograms`).

    Returns
    -------
    dict
        Plain Python values (JSON-ready):

        - ``width``, ``height``, ``short_side`` (int, px, after EXIF orientation);
          ``aspect`` (float, long / short side, ≥ 1); ``megapixels`` (float, W·H / 10⁶).
        - ``sharpness`` (float, ~1–2.7, 0 for flat images): :func:`sharpness`.
        - ``noise_sigma`` (float, grey levels of luma): :func:`noise_sigma`.
        - ``jpeg_quality`` (int 1–100), ``jpeg_nonstandard_tables`` (bool),
          ``jpeg_table_error`` (float, quantiser steps): :func:`jpeg_quality`; None unless the
          file is a JPEG and ``encoded`` is given.
        - ``clipped_dark``, ``clipped_bright`` (float, 0–1): share of pixels with luma ≤ 2,
          ≥ 253 (:func:`clipped_fractions`).
        - ``colourfulness`` (float, ≥ 0; > 30 for most colour photos): :func:`colourfulness`.
        - ``entropy`` (float, 0–8 bits of the luma histogram): :func:`entropy`.
        - ``is_grayscale`` (bool) and ``max_channel_diff`` (int, 0–255, the 99.5th
          percentile of the per-pixel channel spread): :func:`channel_spread`.
        - ``orientation`` (int, EXIF tag, already applied to the pixels), ``mode`` (str, the
          file's own pixel mode), ``format`` (str or None, Pillow's format name).
    """
    pixels = decoded.pixels
    height, width = pixels.shape[:2]
    long_side, short_side = max(height, width), min(height, width)
    y8 = luma(pixels)
    channels = _channels(pixels)
    # one pass for both histograms: the joint (luma, channel spread) histogram
    joint = cv2.calcHist([y8, _spread_image(*channels)], [0, 1], None, [256, 256], [0, 256, 0, 256])
    joint = np.rint(joint).astype(np.int64)
    histogram = joint.sum(axis=1)
    spread = _spread_level(joint.sum(axis=0))
    colour = _colourfulness(*channels)
    if channel_histograms is not None:
        for plane in channels:
            channel_histograms.append(cv2.calcHist([plane], [0], None, [256], [0, 256]).ravel())
    del channels  # the colour planes go before the full-size float work
    yf = y8.astype(np.float32)
    del y8
    dark, bright = clipped_fractions(histogram)
    jpeg = None
    if encoded is not None and decoded.format in _JPEG_FORMATS:
        jpeg = jpeg_quality(encoded)
    return {
        "width": int(width),
        "height": int(height),
        "short_side": int(short_side),
        "aspect": long_side / max(1, short_side),
        "megapixels": width * height / 1e6,
        "sharpness": sharpness(yf),
        "noise_sigma": noise_sigma(yf),
        "jpeg_quality": jpeg.quality if jpeg else None,
        "jpeg_nonstandard_tables": jpeg.nonstandard if jpeg else None,
        "jpeg_table_error": jpeg.table_error if jpeg else None,
        "clipped_dark": dark,
        "clipped_bright": bright,
        "colourfulness": colour,
        "entropy": entropy(histogram),
        "is_grayscale": is_grayscale(spread),
        "max_channel_diff": spread,
        "orientation": int(decoded.orientation),
        "mode": decoded.mode,
        "format": decoded.format,
    }


# ---------------------------------------------------------------------------------------------
# Suggested thresholds
# ---------------------------------------------------------------------------------------------


_COMPARISONS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


@dataclass(frozen=True)
class SignalThreshold:
    """A suggested bound on one signal: an image passes when ``signal op value`` holds.

    ``op`` is ``">="``, ``"<="`` or ``"=="``; ``rationale`` says where ``value`` comes from.
    """

    signal: str
    op: str
    value: float | bool
    rationale: str

    def __post_init__(self) -> None:
        if self.op not in _COMPARISONS:
            raise ValueError(f"op must be one of {sorted(_COMPARISONS)}, got {self.op!r}")

    def check(self, signals: Signals) -> str | None:
        """The rejection reason for ``signals``, or None when they pass or lack the signal.

        Examples
        --------
        >>> SIGNAL_DEFAULT_THRESHOLDS["min_sharpness"].check({"sharpness": 1.2})
        'sharpness 1.2 fails >= 1.6'
        >>> SIGNAL_DEFAULT_THRESHOLDS["min_jpeg_quality"].check({"jpeg_quality": None}) is None
        True
        """
        found = signals.get(self.signal)
        if found is None or _COMPARISONS[self.op](found, self.value):
            return None
        return f"{self.signal} {found!r} fails {self.op} {self.value!r}"


#: Suggested thresholds for a corpus of high-quality real photographs (restoration targets),
#: keyed by a filter name. Size and aspect ratio are the ``min_side`` / ``max_aspect`` filters.
#: The measurements quoted are those of ``tests/test_signals.py``.
SIGNAL_DEFAULT_THRESHOLDS: dict[str, SignalThreshold] = {
    "min_sharpness": SignalThreshold(
        "sharpness",
        ">=",
        1.6,
        "sharp: 4 scikit-image photos 1.74-2.54, their 4096x3072 mosaic 2.48; sigma=1.5 px "
        "blurs 1.43-1.53 (sigma=1.0: 1.58-1.82); 1.6 = step edge blurred by sigma ~ 1.45 px",
    ),
    "max_noise_sigma": SignalThreshold(
        "noise_sigma",
        "<=",
        3.0,
        "clean test photos measure 0.2-1.3 grey levels of luma; 3.0 is independent RGB noise "
        "of sigma ~4.5, already visible in flat areas at 100 %",
    ),
    "min_jpeg_quality": SignalThreshold(
        "jpeg_quality",
        ">=",
        85,
        "restoration targets must be free of visible artefacts: below IJG q85 the "
        "high-frequency luma quantisers exceed ~36 and ringing/blocking shows at 100 %; camera "
        "JPEGs are ~92-98 and well-kept web photographs 85-90 (raise to 90 for a stricter set)",
    ),
    "max_clipped_dark": SignalThreshold(
        "clipped_dark",
        "<=",
        0.25,
        "crushed blacks (luma <= 2) carry no texture, but night skies and studio backdrops are "
        "legitimate (astronaut: 13 %); reject only when a quarter of the frame is crushed",
    ),
    "max_clipped_bright": SignalThreshold(
        "clipped_bright",
        "<=",
        0.10,
        "blown highlights (luma >= 253) look worse than crushed shadows; 10 % leaves room for "
        "light sources and specular highlights (test photos: < 1 %)",
    ),
    "min_entropy": SignalThreshold(
        "entropy",
        ">=",
        5.0,
        "the test photos have 6.7-7.7 bits of luma entropy; flat colours, graphics and "
        "screenshots fall well below 5",
    ),
    "reject_grayscale": SignalThreshold(
        "is_grayscale",
        "==",
        False,
        "a colour SDXL corpus: grey pictures stored as RGB (or L) would teach desaturation",
    ),
}
