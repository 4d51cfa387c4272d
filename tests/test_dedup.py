"""Near-duplicate detection on real photos: copies join their original, different photos never.

The photos are scikit-image's (12, the stereo motorcycle pair counted twice); the copies are
made here with Pillow and OpenCV. The calibration behind the defaults is in the docstring of
``restorelab.curation.dedup``; ``test_scores_keep_their_margins`` pins its margins on this
corpus. Measured here (this code, these photos):

=====================  ==========  ===========  ===========  ===========
pairs                  Hamming     prefilter    similarity   overlap
=====================  ==========  ===========  ===========  ===========
copy vs original (84)  0 – 18      0.79 – 1     0.91 – 1     0.81 – 1
stereo views (64)      4 – 12      0.88 – 0.96  0.37 – 0.47  0.78 – 0.93
other photos (4 160)   20 – 42     ≤ 0.58       0 [1]_       —
=====================  ==========  ===========  ===========  ===========

.. [1] All stopped at the coarse gate (see ``restorelab.curation.dedup``).
"""

from __future__ import annotations

import io
import itertools
import pickle
import time

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance
from skimage import data

from restorelab.curation import dedup
from restorelab.curation.dedup import (
    DEFAULT_HAMMING_RADIUS,
    DEFAULT_MIN_OVERLAP,
    DEFAULT_MIN_SIMILARITY,
    Fingerprint,
    choose_keeper,
    compare,
    find_duplicate_groups,
    fingerprint,
    hamming_pairs,
    phash_of_grey,
    score_pairs,
)
from restorelab.imageio import decode_image

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "retina",
    "hubble_deep_field",
    "camera",
    "immunohistochemistry",
    "coins",
    "moon",
)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


def _photos() -> dict[str, np.ndarray]:
    photos = {name: _rgb(getattr(data, name)()) for name in PHOTOS}
    left, right, _ = data.stereo_motorcycle()
    photos["motorcycle_left"], photos["motorcycle_right"] = left, right
    return photos


def _encoded(image: np.ndarray, fmt: str, **kwargs) -> np.ndarray:
    """Encode with Pillow and decode with restorelab's reader."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return decode_image(buffer.getvalue())


def _scaled(image: np.ndarray, factor: float, interpolation: int) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=interpolation)


def _resized(image: np.ndarray, factor: float, resample: Image.Resampling) -> np.ndarray:
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((round(pil.width * factor), round(pil.height * factor)), resample))


def _cropped(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = round(h * fraction), round(w * fraction)
    return image[dy : h - dy, dx : w - dx]


def _brighter(image: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(image)).enhance(factor))


VARIANTS = {
    "third_jpeg60": lambda im: _encoded(
        _resized(im, 1 / 3, Image.Resampling.LANCZOS), "JPEG", quality=60
    ),
    "half": lambda im: _resized(im, 0.5, Image.Resampling.BICUBIC),
    "double": lambda im: _scaled(im, 2.0, cv2.INTER_CUBIC),
    "crop3": lambda im: _cropped(im, 0.03),
    "crop5": lambda im: _cropped(im, 0.05),
    "brighter10": lambda im: _brighter(im, 1.1),
    "png": lambda im: _encoded(im, "PNG"),
}


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], list[Fingerprint]]:
    """Names, kinds and fingerprints of 12 photos and 7 copies of each (96 images)."""
    names, kinds, fps = [], [], []
    for name, photo in _photos().items():
        for kind, make in {"original": lambda im: im, **VARIANTS}.items():
            names.append(name)
            kinds.append(kind)
            fps.append(fingerprint(make(photo)))
    return names, kinds, fps


# --- fingerprints ------------------------------------------------------------------------------


def test_phash_equals_imagehash_on_32px_grey_images() -> None:
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, (20, 32, 32), dtype=np.uint8))
    for name in PHOTOS[:4]:
        grey = np.asarray(Image.fromarray(_rgb(getattr(data, name)())).convert("L"))
        images.append(cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA))
    for grey in images:
        assert phash_of_grey(grey) == int(str(imagehash.phash(Image.fromarray(grey))), 16)


def test_fingerprint_hash_is_close_to_imagehash_on_whole_photos() -> None:
    # imagehash resizes with Lanczos, fingerprint() with area averaging: 0–2 bits apart here.
    distances = [
        (
            fingerprint(photo).phash ^ int(str(imagehash.phash(Image.fromarray(photo))), 16)
        ).bit_count()
        for photo in _photos().values()
    ]
    assert max(distances) <= 4
    assert np.mean(distances) <= 1.0


def test_fingerprint_pickles_and_is_small() -> None:
    fp = fingerprint(data.astronaut())
    blob = pickle.dumps(fp)
    assert len(blob) <= 5000
    again = pickle.loads(blob)
    assert again == fp and hash(again) == hash(fp)
    assert again.thumb.dtype == np.uint8 and again.thumb.shape == (64, 64)
    assert 0 <= again.phash < 2**64
    assert not fp.thumb.flags.writeable
    assert fp != fingerprint(data.coffee())


def test_fingerprint_checks_its_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        fingerprint(data.camera())
    with pytest.raises(ValueError, match="uint8"):
        fingerprint(data.astronaut().astype(np.float32))
    with pytest.raises(ValueError, match=r"phash must be in \[0, 2\*\*64\)"):
        Fingerprint(phash=-1, thumb=np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"thumb must be \(64, 64\)"):
        Fingerprint(phash=0, thumb=np.zeros((32, 32), np.uint8))


def test_fingerprint_of_a_large_photo_is_fast() -> None:
    big = cv2.resize(data.astronaut(), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    fingerprint(big)
    best = min(_timed(fingerprint, big) for _ in range(3))
    assert best < 0.15  # about 0.01 s on one core; the bound leaves room for busy machines


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# --- grouping ----------------------------------------------------------------------------------


def test_copies_join_their_original_and_different_photos_stay_apart(corpus) -> None:
    names, kinds, fps = corpus
    groups = find_duplicate_groups(fps)
    expected = [[i for i, n in enumerate(names) if n == name] for name in dict.fromkeys(names)]
    for group in groups:
        assert len({names[i] for i in group}) == 1, [(names[i], kinds[i]) for i in group]
    missing = [
        (names[i], kinds[i]) for members in expected for i in members if members not in groups
    ]
    assert not missing
    assert groups == sorted(expected)


def test_grouping_does_not_depend_on_input_order(corpus) -> None:
    _, _, fps = corpus
    reference = find_duplicate_groups(fps)
    perm = np.random.default_rng(1).permutation(len(fps))
    shuffled = find_duplicate_groups([fps[k] for k in perm])
    assert sorted(sorted(int(perm[i]) for i in group) for group in shuffled) == reference


def test_scores_keep_their_margins(corpus) -> None:
    """The calibration on this corpus: copies well above the thresholds, others well below."""
    names, kinds, fps = corpus
    copies = [(i, j) for i, j in itertools.combinations(range(len(fps)), 2) if names[i] == names[j]]
    copies = [(i, j) for i, j in copies if kinds[i] == "original"]
    others = [
        (i, j)
        for i, j in itertools.combinations(range(len(fps)), 2)
        if names[i] != names[j] and (fps[i].phash ^ fps[j].phash).bit_count() <= 26
    ]
    copy_scores = score_pairs(fps, copies)
    other_scores = score_pairs(fps, others)
    assert len(copy_scores) == 12 * len(VARIANTS)
    # measured: Hamming 0–18, prefilter ≥ 0.79, similarity ≥ 0.91, overlap ≥ 0.81
    assert max(s.hamming for s in copy_scores) <= DEFAULT_HAMMING_RADIUS - 2
    assert min(s.prefilter for s in copy_scores) >= dedup._PREFILTER_MIN + 0.1
    assert min(s.similarity for s in copy_scores) >= DEFAULT_MIN_SIMILARITY + 0.15
    assert min(s.overlap for s in copy_scores) >= DEFAULT_MIN_OVERLAP + 0.05
    # measured: the stereo views 0.37–0.47 (all 64 pairs within 26 bits), the others 0
    stereo = {"motorcycle_left", "motorcycle_right"}
    stereo_scores = [
        s for (i, j), s in zip(others, other_scores, strict=True) if {names[i], names[j]} == stereo
    ]
    assert len(stereo_scores) == (len(VARIANTS) + 1) ** 2
    assert max(s.similarity for s in stereo_scores) <= DEFAULT_MIN_SIMILARITY - 0.1
    assert max(s.similarity for s in other_scores) <= DEFAULT_MIN_SIMILARITY - 0.1


def test_stereo_views_have_close_hashes_but_are_not_duplicates() -> None:
    left, right, _ = data.stereo_motorcycle()
    score = compare(fingerprint(left), fingerprint(right))
    assert score.hamming <= 8  # the hash alone would merge them
    assert score.similarity < DEFAULT_MIN_SIMILARITY - 0.1
    assert compare(fingerprint(right), fingerprint(left)) == score
    assert find_duplicate_groups([fingerprint(left), fingerprint(right)]) == []


@pytest.mark.parametrize("name", ["retina", "hubble_deep_field", "astronaut", "rocket", "coffee"])
def test_crops_sharing_less_than_80_percent_are_different_photos(name: str) -> None:
    photo = _rgb(getattr(data, name)())
    h, w = photo.shape[:2]
    ch, cw = round(0.8 * h), round(0.8 * w)
    sy, sx = round(0.25 * ch), round(0.25 * cw)  # shifted crops share 75 % of their area
    dy, dx = round(0.134 * ch), round(0.134 * cw)  # so does the diagonal one: 0.866²
    base = photo[:ch, :cw]
    crops = [
        base,
        photo[:ch, sx : sx + cw],
        photo[sy : sy + ch, :cw],
        photo[dy : dy + ch, dx : dx + cw],
        _cropped(base, 0.05),  # control: a copy of the first crop
    ]
    fps = [fingerprint(crop) for crop in crops]
    assert find_duplicate_groups(fps) == [[0, 4]]
    for score in score_pairs(fps, [(0, 1), (0, 2), (0, 3)]):
        assert score.overlap < DEFAULT_MIN_OVERLAP or score.similarity < DEFAULT_MIN_SIMILARITY


def test_flat_images_group_only_with_their_own_grey_level() -> None:
    black, grey, white = (
        np.full((60 + k, 80, 3), v, np.uint8) for k, v in enumerate((0, 128, 255))
    )
    fps = [fingerprint(black), fingerprint(white), fingerprint(black[:50]), fingerprint(grey)]
    assert find_duplicate_groups(fps) == [[0, 2]]


def test_hamming_pairs_matches_brute_force(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64) << np.uint64(1)
    hashes[50] = hashes[7] ^ np.uint64(0b1011)  # 3 bits apart
    monkeypatch.setattr(dedup, "_BLOCK_ELEMENTS", 1000)  # many blocks
    for radius in (3, 24):
        found = hamming_pairs(hashes, radius)
        expected = [
            (i, j)
            for i, j in itertools.combinations(range(len(hashes)), 2)
            if (int(hashes[i]) ^ int(hashes[j])).bit_count() <= radius
        ]
        assert found.tolist() == [list(p) for p in expected]
        assert (7, 50) in expected
    assert hamming_pairs(hashes[:0], 5).shape == (0, 2)


def test_find_duplicate_groups_edge_cases_and_errors(corpus) -> None:
    _, _, fps = corpus
    assert find_duplicate_groups([]) == []
    assert find_duplicate_groups(fps[:1]) == []
    assert find_duplicate_groups([fps[0], fps[0]]) == [[0, 1]]
    # only identical fingerprints reach similarity 1: the PNG of the same pixels
    identical = [i for i in range(8) if fps[i] == fps[0]]
    assert 7 in identical and len(identical) < 8
    assert find_duplicate_groups(fps[:8], min_similarity=1.0) == [identical]
    with pytest.raises(ValueError, match=r"hamming_radius must be in 0\.\.64"):
        find_duplicate_groups(fps, hamming_radius=65)
    with pytest.raises(TypeError, match="hamming_radius must be an int"):
        find_duplicate_groups(fps, hamming_radius=2.5)
    with pytest.raises(ValueError, match=r"min_similarity must be in \[-1, 1\]"):
        find_duplicate_groups(fps, min_similarity=1.5)
    with pytest.raises(ValueError, match=r"min_overlap must be in \[0, 1\]"):
        find_duplicate_groups(fps, min_overlap=-0.1)
    with pytest.raises(TypeError, match=r"fingerprints\[1\] is a str"):
        find_duplicate_groups([fps[0], "photo.jpg"])
    with pytest.raises(IndexError, match="pairs must index 2 fingerprints"):
        score_pairs(fps[:2], [(0, 2)])


# --- choosing the keeper -----------------------------------------------------------------------


def test_choose_keeper_prefers_pixels_then_compression_then_sharpness_then_index() -> None:
    quality = [
        {"width": 171, "height": 171, "jpeg_quality": 60, "sharpness": 2.4},  # 1/3 size
        {"width": 512, "height": 512, "jpeg_quality": 75, "sharpness": 2.10},
        {"width": 512, "height": 512, "jpeg_quality": None, "sharpness": 2.05},  # lossless
        {"width": 512, "height": 512, "jpeg_quality": 95, "sharpness": 2.12},
        {"width": 512, "height": 512, "jpeg_quality": None, "sharpness": 2.15},
        {"width": 512, "height": 512, "jpeg_quality": None, "sharpness": 2.15},
        {"width": 1024, "height": 1024, "jpeg_quality": 60},  # upscaled: most pixels
    ]
    assert choose_keeper([0, 1, 2, 3, 4, 5, 6], quality) == 6  # largest first
    assert choose_keeper([0, 1, 3], quality) == 3  # then the least compressed
    assert choose_keeper([1, 2, 3], quality) == 2  # lossless beats any JPEG quality
    assert choose_keeper([2, 4], quality) == 4  # then the sharpest
    assert choose_keeper([5, 4], quality) == 4  # then the lowest index
    assert choose_keeper([3], quality) == 3


def test_choose_keeper_passes_over_blurred_and_noisy_copies() -> None:
    """A degraded copy re-saved at a higher JPEG quality does not beat its original."""
    original = {"width": 800, "height": 600, "jpeg_quality": 75, "sharpness": 1.9,
                "noise_sigma": 0.3}  # fmt: skip
    blurred = {**original, "jpeg_quality": 95, "sharpness": 1.4}
    noisy = {**original, "jpeg_quality": 95, "noise_sigma": 9.0}
    re_saved = {**original, "jpeg_quality": 95, "sharpness": 1.88}  # within the margins
    smaller = {**original, "width": 400, "height": 300, "sharpness": 2.6}
    quality = [original, blurred, noisy, re_saved, smaller]
    assert choose_keeper([1, 0], quality) == 0
    assert choose_keeper([2, 0], quality) == 0
    assert choose_keeper([1, 2, 0], quality) == 0
    assert choose_keeper([0, 3], quality) == 3  # no visible degradation: compression decides
    assert choose_keeper([4, 1], quality) == 1  # size first; sharpness compares within a size


def test_choose_keeper_tolerates_missing_keys() -> None:
    quality = [{}, {"width": 10, "height": 10}, {"width": 10, "height": 10, "jpeg_quality": 50}]
    assert choose_keeper([0, 1, 2], quality) == 2  # unknown compression ranks below JPEG 50
    assert choose_keeper([0, 1], quality) == 1  # unknown size counts as 0 pixels
    assert choose_keeper([0], [None]) == 0
    with pytest.raises(ValueError, match="at least one index"):
        choose_keeper([], quality)
