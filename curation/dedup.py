"""Near-duplicate photos: perceptual-hash candidates confirmed by aligning grey thumbnails.

A photo and its copies that were resized (1/3, 1/2, 2×), re-encoded as JPEG (quality ≥ 60),
cropped by up to about 5 % per side or slightly brightened fall into one group; different
photos of one scene (a stereo pair, two crops of a photo that share less than about 80 % of
their area) do not. Exact duplicates are the special case of Hamming distance 0 and
similarity 1.

Method (see :func:`find_duplicate_groups`):

1. **Candidates** — pairs whose 64-bit pHash differ in at most ``hamming_radius`` bits, then a
   cheap gate: unaligned 16×16 blurred thumbnails must correlate ≥ 0.65.
2. **Confirmation** — the 64×64 grey thumbnails are registered under a crop-and-scale model
   (per axis a scale and a shift, plus gain and bias) by Gauss–Newton (Lucas–Kanade), coarse
   to fine: 16 and 32 px in both directions, then 64 px on band-passed images. The pair is a
   duplicate when the band-pass (difference of Gaussians, σ 0.5 and 1.5 px) normalised
   cross-correlation of the aligned thumbnails reaches ``min_similarity`` *and* the two
   footprints overlap (intersection over union) by ``min_overlap``. Alignment absorbs crops
   and rescaling; the band ignores brightness, JPEG blocking and the low frequencies that
   photos of one scene share; a stereo pair's parallax leaves residuals that no single crop
   removes; crops of one photo align perfectly but overlap too little.
3. **Grouping** — union-find over the confirmed pairs.

Calibration: 19 images — 14 from scikit-image (those of ``tests/test_dedup.py``, and the
``page`` and ``text`` scans) and five photos shipped with pyiqa (``SPAQ_10241``, three
``frame_*``) and matplotlib (``grace_hopper``). Each with the copies of the tests (1/3 size +
JPEG 60, 1/2, 2×, 3 % and 5 % crops per side, +10 % brightness, PNG) and 13 more (JPEG 40 and
60, 1/4 size + JPEG 60, three one- or two-sided 5 % crops, two crops at 1/3 size + JPEG 60,
−10 % brightness, gamma 0.8, blur σ 1.5, noise σ 8, a 2:1 squash); and 16 random crops (40 to
75 % per side) of each, of which the pairs with IoU < 0.67 (equal crops sharing < 80 %):

==============================  ===============  ===========  =============  ============
pairs                           pHash distance   prefilter    similarity     overlap
==============================  ===============  ===========  =============  ============
copies, test variants (133)     0 – 20           0.79 – 1     0.91 – 1       0.81 – 1
copies, other variants (247)    0 – 24           0.79 – 1     0.86 – 1       0.81 – 1
different photos [1]_           16 – 26          ≤ 0.75       ≤ 0.16 [2]_    —
stereo motorcycle (576)         4 – 20           0.77 – 0.98  0.12 – 0.52    0.71 – 0.96
crops, IoU < 0.67 (2 096)       14 – 48          ≤ 0.99       ≤ 0.99         ≤ 0.67 [3]_
==============================  ===============  ===========  =============  ============

.. [1] 97 920 pairs, median distance 32; 1.5 % lie within 22 bits, 4.9 % within 24. The
   12 258 within 26 bits were scored.
.. [2] All but one stopped at the coarse gate (coarse similarity ≤ 0.40; copies ≥ 0.60).
.. [3] Among those with similarity ≥ 0.7: the alignment is exact, the footprints disagree.

Hence the defaults: ``hamming_radius=22`` (the test variants reach 20; the 5 % + 3 % crop of
a 1/3-size JPEG of ``retina`` reached 24 — raise the radius to 24 for such compound edits, for
about three times the candidates), ``min_similarity=0.7`` (between 0.52 and 0.86) and
``min_overlap=0.75`` (a 5 %-per-side crop keeps 0.81; two equal crops sharing 80 % of their
area have 0.67).

Not grouped (limits): rotations (2° already fails for half the photos), crops beyond about 6 %
per side (7 % gives overlap 0.74), mirror images, strong tone changes that clip detail
(+25 % brightness on a page scan), and pairs whose hashes differ by more than the radius.

Fingerprint once per image (about 4.2 KB each) and group later, in another process if need
be; :class:`ThumbnailStore` and :func:`group_store` group a pool whose fingerprints do not
fit in memory (only the 64-bit hashes stay there).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np

from restorelab.imageio import check_image

#: Side of the grey thumbnail kept in a :class:`Fingerprint`, pixels.
THUMB_SIZE = 64
#: Side of the grey image whose DCT gives the pHash, and side of the hashed low-frequency block.
DCT_SIZE, HASH_SIZE = 32, 8
#: Default largest pHash Hamming distance of a candidate pair (bits out of 64).
DEFAULT_HAMMING_RADIUS = 22
#: Default smallest band-pass correlation of the aligned thumbnails of a duplicate pair.
DEFAULT_MIN_SIMILARITY = 0.7
#: Default smallest intersection over union of the two aligned footprints.
DEFAULT_MIN_OVERLAP = 0.75

# Luma weights of ITU-R BT.601, as Pillow's convert("L") (and so imagehash) uses.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# Images are shrunk by an integer factor (OpenCV's fast INTER_AREA path) to a short side of at
# least twice this, then squashed to this square before the thumbnails are made.
_WORK_SIZE = 128
# Unaligned correlation of 16×16 blurred (σ 1 px) thumbnails a candidate needs before it is
# aligned. Copies scored ≥ 0.785 (7 %-per-side crops, rejected by the overlap anyway, 0.67).
_PREFILTER_SIZE, _PREFILTER_MIN = 16, 0.65
# Coarse-to-fine levels: (thumbnail side, Gaussian sigma in pixels or None for the band-pass
# image, Gauss–Newton steps). All but the last level run in both directions.
_LEVELS = ((16, 1.0, 6), (32, 1.0, 3), (THUMB_SIZE, None, 2))
# Band-pass correlation after the coarse levels below which a pair stops (similarity 0).
# Copies scored ≥ 0.598 there, different photos ≤ 0.40; it saves time, the decision is later.
_COARSE_MIN = 0.3
# Difference-of-Gaussians band (sigmas in pixels of the level's thumbnail).
_BAND = (0.5, 1.5)
# Bounds of the fitted model: scale, and where the middle of B lands in A ([0, 1] units).
_SCALE_BOUNDS, _CENTRE_BOUNDS = (0.6, 1.6), (0.1, 0.9)
# Pairs aligned per batch (about 25 MB of working memory; the scores do not depend on it:
# 64, 100, 128 and 256 gave bit-identical scores, and smaller batches run faster).
_BATCH = 64
# Elements of the XOR block in the candidate search (uint64: 32 MB).
_BLOCK_ELEMENTS = 1 << 22
# Candidate pairs per prefilter chunk (two gathered 256-float rows each: 16 MB).
_PREFILTER_CHUNK = 1 << 13
# Side of the square tiles of the streamed candidate search (1024² hashes: 8 MB of XOR, and
# the prefilter vectors of 2 × 1024 images: 2 MB).
_TILE = 1024
# Candidate pairs aligned per chunk (their thumbnails are fetched per chunk).
_SCORE_CHUNK = 1024
# Pairs buffered before a pair spool writes them to its file.
_SPOOL_BUFFER = 1 << 16
#: Version of the alignment scores (similarity, overlap) that a :class:`ScoreMemo` keeps:
#: bump it when :func:`_score_pairs` changes its results.
SCORE_VERSION = 1


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What near-duplicate detection keeps of an image (about 4.2 KB pickled).

    Attributes
    ----------
    phash : int
        64-bit perceptual hash (0 ≤ phash < 2**64) of the 32×32 grey thumbnail; see
        :func:`phash_of_grey`.
    thumb : ndarray of uint8, shape (64, 64)
        Grey (BT.601 luma) thumbnail of the whole image squashed to a square, contrast
        stretched to 0–255 (a flat image keeps its level).
    """

    phash: int
    thumb: np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.phash, bool) or not isinstance(self.phash, (int, np.integer)):
            raise TypeError(f"phash must be an int, got {type(self.phash).__name__}")
        if not 0 <= int(self.phash) < 1 << 64:
            raise ValueError(f"phash must be in [0, 2**64), got {self.phash}")
        thumb = self.thumb
        if not isinstance(thumb, np.ndarray) or thumb.dtype != np.uint8:
            raise TypeError(f"thumb must be a uint8 array, got {getattr(thumb, 'dtype', thumb)}")
        if thumb.shape != (THUMB_SIZE, THUMB_SIZE):
            raise ValueError(f"thumb must be ({THUMB_SIZE}, {THUMB_SIZE}), got {thumb.shape}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return int(self.phash) == int(other.phash) and np.array_equal(self.thumb, other.thumb)

    def __hash__(self) -> int:
        return hash((int(self.phash), self.thumb.tobytes()))


class PairScore(NamedTuple):
    """How alike two fingerprints are, in the measures :func:`find_duplicate_groups` uses.

    ``hamming``: pHash bits that differ; ``prefilter``: unaligned correlation of the 16×16
    blurred thumbnails; ``similarity``: band-pass correlation after alignment (0, with
    ``overlap`` 0, for pairs that stopped at the coarse levels); ``overlap``: intersection
    over union of the aligned footprints.
    """

    hamming: int
    prefilter: float
    similarity: float
    overlap: float


def fingerprint(pixels: np.ndarray) -> Fingerprint:
    """Fingerprint an RGB ``uint8`` (H, W, 3) image for :func:`find_duplicate_groups`.

    The image is shrunk with OpenCV's area interpolation (first by an integer factor, the
    fast path: about 10 ms for 4000×3000 on one core), converted to BT.601 luma and squashed
    to 32×32 for the pHash and to 64×64 for the thumbnail.

    Examples
    --------
    >>> from skimage import data
    >>> fp = fingerprint(data.astronaut())
    >>> f"{fp.phash:016x}", fp.thumb.shape
    ('c2924c5532bddfc8', (64, 64))
    """
    pixels = working_copy(pixels)
    work = cv2.resize(pixels, (_WORK_SIZE, _WORK_SIZE), interpolation=cv2.INTER_AREA)
    grey = work.astype(np.float32) @ _LUMA
    small = cv2.resize(grey, (DCT_SIZE, DCT_SIZE), interpolation=cv2.INTER_AREA)
    thumb = cv2.resize(grey, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    lo, hi = float(thumb.min()), float(thumb.max())
    # a flat image keeps its grey level, so that only flat images of one level are equal
    stretched = (thumb - lo) * (255.0 / (hi - lo)) if hi > lo else thumb
    thumb8 = np.clip(np.round(stretched), 0, 255).astype(np.uint8)
    thumb8.setflags(write=False)
    return Fingerprint(phash=phash_of_grey(small), thumb=thumb8)


def working_copy(pixels: np.ndarray) -> np.ndarray:
    """The image shrunk by the largest integer factor that keeps its short side ≥ 256 px.

    OpenCV's area interpolation by an integer factor (the fast path) of the image cropped to a
    multiple of the factor; the image itself when it is already that small. Thumbnails are
    made from this copy: ``fingerprint(working_copy(x))`` equals ``fingerprint(x)`` (and
    :func:`restorelab.curation.selection.embed` likewise), so one copy serves both.
    """
    check_image(pixels, name="pixels")
    h, w = pixels.shape[:2]
    factor = max(1, min(h, w) // (2 * _WORK_SIZE))
    if factor == 1:
        return pixels
    hc, wc = h - h % factor, w - w % factor
    return cv2.resize(pixels[:hc, :wc], (wc // factor, hc // factor), interpolation=cv2.INTER_AREA)


def _dct_rows(size: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the unnormalised DCT-II matrix of ``size`` points.

    Row k is ``2 cos(π k (2n + 1) / (2 · size))``: SciPy's ``dct(x, type=2, norm=None)`` is
    ``matrix @ x``.
    """
    k = np.arange(keep, dtype=np.float64)[:, None]
    n = np.arange(size, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * size))


_DCT_LOW = _dct_rows(DCT_SIZE, HASH_SIZE)


def phash_of_grey(grey: np.ndarray) -> int:
    """The 64-bit pHash of a 32×32 grey image (any real dtype), as an ``int``.

    DCT-II (unnormalised) along rows then columns; of the low 8×8 block, a bit is set where
    the coefficient exceeds the block's median; bits row-major, first bit most significant.
    For a 32×32 ``uint8`` image this is ``int(str(imagehash.phash(Image.fromarray(grey))),
    16)``. Only the low block is computed, as two small matrix products (no SciPy import,
    which would cost 0.13 s before the first image).
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.shape != (DCT_SIZE, DCT_SIZE):
        raise ValueError(f"grey must have shape ({DCT_SIZE}, {DCT_SIZE}), got {grey.shape}")
    coeffs = _DCT_LOW @ grey @ _DCT_LOW.T
    bits = (coeffs > np.median(coeffs)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming_pairs(hashes: np.ndarray, radius: int, *, bar: Any = None) -> np.ndarray:
    """All pairs ``i < j`` of 64-bit hashes that differ in at most ``radius`` bits.

    Compares every pair, block by block (XOR and ``np.bitwise_count`` on ``uint64``, about
    40 MB of working memory): n²/2 comparisons, about 0.2 s for 10 000 hashes, 5 s for
    50 000 and 20 s for 100 000 on one core. Returns an (m, 2) ``int64`` array sorted by
    ``i`` then ``j``. ``bar`` (a tqdm bar) is advanced by the rows compared.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64).ravel()
    n = len(hashes)
    found: list[np.ndarray] = []
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        close = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, start:]) <= radius
        i, j = np.nonzero(close)
        keep = j > i
        if keep.any():
            found.append(np.stack([i[keep] + start, j[keep] + start], axis=1))
        if bar is not None:
            bar.update(stop - start)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


def find_duplicate_groups(
    fingerprints: Sequence[Fingerprint],
    *,
    hamming_radius: int = DEFAULT_HAMMING_RADIUS,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    progress: bool = False,
) -> list[list[int]]:
    """Group near-duplicate images by their fingerprints.

    Parameters
    ----------
    fingerprints : sequence of Fingerprint
        One per image, from :func:`fingerprint`; the groups hold indices into it.
    hamming_radius : int, default 22
        Largest pHash Hamming distance (0–64) of a candidate pair. Copies measured 0–20 bits
        from their original (20: a 5 %-per-side crop), compound crops up to 24; 1.5 % of the
        pairs of different photos lie within 22 bits.
    min_similarity : float, default 0.7
        Smallest band-pass correlation of the aligned thumbnails. Copies measured 0.86–1,
        different photos at most 0.52 (the stereo pair; others ≤ 0.16).
    min_overlap : float, default 0.75
        Smallest intersection over union of the aligned footprints: a 5 %-per-side crop
        keeps 0.81 of its original, two equal crops sharing 80 % of their area 0.67.
    progress : bool, keyword-only
        Show two tqdm bars: the candidate search (images) and the alignment (pairs).

    Returns
    -------
    list of list of int
        Groups of two or more indices, each sorted, the list sorted. An image joins a group
        when it is confirmed against any member (union-find), so a chain of copies is one
        group — and so is a chain of crops that each overlap the next by ``min_overlap``,
        though its ends may not. The result depends on the fingerprints, not on their order.

    Notes
    -----
    Cost: all n²/2 hash pairs are compared, tile by tile (about 150 million pairs a
    second on one core: 0.3 s for 10 000 fingerprints, 35 s for 100 000), and the pairs
    within the radius go through the prefilter as each tile is compared (about 1.5 µs
    each), so only the survivors are ever kept (9 bytes each; in files with
    :func:`group_store`); each survivor then costs 0.3–0.6 ms to align (the more for
    copies, which reach the last level) on a busy two-core machine, spread over
    ``workers`` threads. With 1.5 % of unrelated pairs within 22 bits and about 2 % of
    those passing the prefilter, 100 000 photos mean some 75 million candidates (about 2
    minutes) and 1.5 million alignments (about 10 minutes); crops of a few photos pass the
    prefilter more often (9 % on the pool of ``benchmarks/curation_pool.py``). Lower the
    radius to trade recall for time. Survivors are aligned only while they can still join
    two groups, so a photo with k copies costs k − 1 alignments rather than k(k − 1)/2
    (closest hashes first; the groups are the same). Fingerprints with equal hash and
    thumbnail are duplicates outright (flat images of one grey level included). Memory:
    the fingerprints, one tile of hashes and prefilter vectors, the survivors (in memory
    here; see :func:`group_store` for files) and the thumbnails of one chunk of pairs per
    thread.

    Examples
    --------
    >>> from skimage import data
    >>> photo = data.astronaut()
    >>> fps = [fingerprint(photo), fingerprint(data.coffee()), fingerprint(photo[10:-12, 8:])]
    >>> find_duplicate_groups(fps)
    [[0, 2]]
    """
    for k, fp in enumerate(fingerprints):
        if not isinstance(fp, Fingerprint):
            raise TypeError(f"fingerprints[{k}] is a {type(fp).__name__}, not a Fingerprint")
    return group_store(
        _MemoryStore(fingerprints),
        np.arange(len(fingerprints)),
        hamming_radius=hamming_radius,
        min_similarity=min_similarity,
        min_overlap=min_overlap,
        progress=progress,
    )


def group_store(
    store: ThumbnailStore | Any,
    members: np.ndarray,
    *,
    hamming_radius: int = DEFAULT_HAMMING_RADIUS,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    progress: bool = False,
    spool_dir: str | os.PathLike | None = None,
    stats: dict | None = None,
    workers: int = 1,
    memo: ScoreMemo | None = None,
) -> list[list[int]]:
    """:func:`find_duplicate_groups` of the images ``members`` of a :class:`ThumbnailStore`,
    in memory that does not grow with their number.

    The candidate search runs tile by tile (:data:`_TILE` × :data:`_TILE` hashes, upper
    triangle): each tile's pairs within ``hamming_radius`` go through the prefilter at once,
    with the prefilter vectors of the tile's rows and columns read from the store, and only
    the survivors are kept — in pair spools, one per Hamming distance, written to files
    under ``spool_dir`` (in memory when None), 9 bytes a pair. The alignment then reads the
    spools closest hashes first, and fetches the thumbnails of each chunk of
    :data:`_SCORE_CHUNK` pairs. Each pair's verdict depends on that pair only, so the groups
    are those of :func:`find_duplicate_groups` on the same fingerprints.

    Parameters
    ----------
    members : array of int
        Indices into ``store``, ascending; the returned groups hold positions in
        ``members`` (as :func:`find_duplicate_groups` holds indices into its list).
    workers : int, default 1
        Threads that align candidate pairs (the groups do not depend on it).
    stats : dict, optional
        Filled with the counts: ``images``, ``hash_comparisons``, ``candidates`` (pairs within
        the radius), ``prefilter_passed``, ``aligned`` (pairs scored, from ``memo`` or
        aligned), ``scores_reused`` (of those, from ``memo``), ``confirmed``, ``rounds`` and
        ``groups``.
    memo : ScoreMemo, optional
        Scores of pairs aligned before (by their fingerprints' :func:`fingerprint_key`):
        a pair found there is not aligned again, and each new score is added to it. The
        groups are the same with or without it (a score depends on the pair only); a
        re-run skips the alignment, the most of a large pool's grouping time.
    """
    if isinstance(hamming_radius, bool) or not isinstance(hamming_radius, (int, np.integer)):
        raise TypeError(f"hamming_radius must be an int, got {hamming_radius!r}")
    if not 0 <= hamming_radius <= 64:
        raise ValueError(f"hamming_radius must be in 0..64, got {hamming_radius}")
    if not -1.0 <= min_similarity <= 1.0:
        raise ValueError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap}")
    from restorelab.progress import tqdm

    members = np.asarray(members, np.int64).ravel()
    if len(members) > 1 and not (np.diff(members) > 0).all():
        raise ValueError("members must be ascending and distinct")
    stats = {} if stats is None else stats
    m = len(members)
    stats.update(images=m, hash_comparisons=m * (m - 1) // 2, candidates=0)
    survivors = _PairSpools(spool_dir, "survivors")
    try:
        with tqdm(
            total=m * (m - 1) // 2,
            desc="near duplicates: candidates",
            unit="pair",
            unit_scale=True,
            disable=not progress,
        ) as bar:
            _candidates(store, members, int(hamming_radius), survivors, stats, bar)
        stats["prefilter_passed"] = len(survivors)
        with tqdm(
            total=len(survivors), desc="near duplicates: align", unit="pair", disable=not progress
        ) as bar:
            parent = _join_confirmed(
                store,
                members,
                survivors,
                min_similarity,
                min_overlap,
                stats,
                bar,
                spool_dir,
                max(1, int(workers)),
                memo,
            )
    finally:
        survivors.close()
    groups = _components(parent)
    stats["groups"] = len(groups)
    return groups


def _candidates(store, members, radius: int, survivors, stats: dict, bar) -> None:
    """Stream the pairs within ``radius`` that pass the prefilter into ``survivors``."""
    hashes = store.phashes[members]
    m = len(members)
    for r0 in range(0, m, _TILE):
        r1 = min(m, r0 + _TILE)
        rows = store.vectors(members[r0:r1])
        for c0 in range(r0, m, _TILE):
            c1 = min(m, c0 + _TILE)
            cols = rows if c0 == r0 else store.vectors(members[c0:c1])
            distance = np.bitwise_count(hashes[r0:r1, None] ^ hashes[None, c0:c1])
            close = distance <= radius
            if c0 == r0:
                close &= np.triu(np.ones(close.shape, bool), k=1)
            i, j = np.nonzero(close)
            stats["candidates"] += len(i)
            if len(i):
                pre = _dot_rows(rows, cols, i, j)
                a, b = members[r0 + i], members[c0 + j]
                pre[_identical(store, a, b)] = 1.0
                keep = pre >= _PREFILTER_MIN
                survivors.add(i[keep] + r0, j[keep] + c0, distance[i[keep], j[keep]])
            done = (r1 - r0) * (c1 - c0)
            if c0 == r0:
                done = (r1 - r0) * (r1 - r0 - 1) // 2
            bar.update(done)


def _join_confirmed(
    store,
    members,
    survivors,
    min_similarity,
    min_overlap,
    stats: dict,
    bar,
    spool_dir,
    workers,
    memo: ScoreMemo | None = None,
) -> list[int]:
    """Union-find forest of the confirmed survivor pairs (positions in ``members``).

    A group of k copies has k(k − 1)/2 candidate pairs but needs only k − 1 confirmed ones,
    and confirming a pair whose images are already joined changes no group. So candidates
    are scored in rounds, closest hashes first: each round scores the pairs that would join
    two groups not yet joined if every pair of the round were confirmed (a spanning forest
    of the candidates left), then joins the confirmed ones; pairs already joined are dropped.
    Each pair's score depends on that pair only, so the groups are those of scoring every
    candidate. When under half of a round is confirmed (candidates are mostly different
    photos), the rest is scored at once, as rounds would not save work. The bar counts the
    pairs aligned, as they are (its rate is then the alignment's, so the ETA holds), takes
    the pairs whose scores come from ``memo`` off its total as they are found, and jumps to
    its end for the pairs found joined without aligning.
    """
    parent = list(range(len(members)))

    def root(forest: list[int], i: int) -> int:
        while forest[i] != i:
            forest[i] = forest[forest[i]]
            i = forest[i]
        return i

    stats.update(aligned=0, scores_reused=0, confirmed=0, rounds=0)
    remaining, optimistic = survivors, True
    while len(remaining):
        stats["rounds"] += 1
        trial = parent.copy()
        batch, rest = _PairSpools(spool_dir, "batch"), _PairSpools(spool_dir, "rest")
        try:
            for ci, cj, distance in remaining.chunks():
                take_i, take_j, rest_i, rest_j = [], [], [], []
                for i, j in zip(ci.tolist(), cj.tolist(), strict=True):
                    if root(parent, i) == root(parent, j):
                        continue  # joined already
                    ti, tj = root(trial, i), root(trial, j)
                    if optimistic and ti == tj:
                        rest_i.append(i)  # joined too if this round's pairs are confirmed
                        rest_j.append(j)
                        continue
                    trial[max(ti, tj)] = min(ti, tj)
                    take_i.append(i)
                    take_j.append(j)
                batch.add(np.array(take_i, np.int64), np.array(take_j, np.int64), distance)
                rest.add(np.array(rest_i, np.int64), np.array(rest_j, np.int64), distance)
            if remaining is not survivors:
                remaining.close()
            if not len(batch):
                rest.close()
                break
            good_count = 0
            scored = _scored(store, members, batch, workers, memo)
            for ci, cj, sims, overlaps, reused in scored:
                good = (sims >= min_similarity) & (overlaps >= min_overlap)
                good_count += int(good.sum())
                for i, j in zip(ci[good].tolist(), cj[good].tolist(), strict=True):
                    ri, rj = root(parent, i), root(parent, j)
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
                if reused:  # scores from the memo leave the bar: it counts alignments only
                    stats["scores_reused"] += reused
                    bar.total -= reused
                    bar.refresh()
                bar.update(min(len(ci) - reused, bar.total - bar.n))
            stats["aligned"] += len(batch)
            stats["confirmed"] += good_count
            optimistic = 2 * good_count >= len(batch)
        finally:
            batch.close()
        remaining = rest
    bar.update(bar.total - bar.n)
    return [root(parent, i) for i in range(len(parent))]


def _scored(
    store,
    members: np.ndarray,
    batch: _PairSpools,
    workers: int,
    memo: ScoreMemo | None = None,
):
    """(i, j, similarity, overlap, reused) of the batch's pairs, chunk by chunk, in order
    (``reused``: how many of the chunk's scores came from ``memo``); scored on
    ``workers`` threads (the alignment's batched NumPy work releases the GIL; each pair's
    score depends on that pair only, so the scores are those of one thread). With ``memo``,
    the pairs found there are not aligned, and the others' scores are added to it (both in
    this thread: the memo need not be thread-safe)."""
    keys = store.keys if memo is not None else None

    def score(ci: np.ndarray, cj: np.ndarray, known):
        if known is None:
            sims, overlaps = _score_pairs(store, np.stack([members[ci], members[cj]], axis=1))
            return ci, cj, sims, overlaps, None
        found, sims, overlaps = known
        todo = ~found
        if todo.any():
            pairs = np.stack([members[ci[todo]], members[cj[todo]]], axis=1)
            sims[todo], overlaps[todo] = _score_pairs(store, pairs)
        return ci, cj, sims, overlaps, todo

    def jobs():
        for ci, cj, _ in batch.chunks(_SCORE_CHUNK):
            known = None
            if memo is not None:
                found, sims, overlaps = memo.pair_scores(
                    keys[members[ci]], keys[members[cj]], SCORE_VERSION
                )
                known = (found, np.asarray(sims, np.float64), np.asarray(overlaps, np.float64))
            yield ci, cj, known

    def remember(result):
        ci, cj, sims, overlaps, todo = result
        if todo is None:
            return ci, cj, sims, overlaps, 0
        if todo.any():
            memo.put_pair_scores(
                keys[members[ci[todo]]],
                keys[members[cj[todo]]],
                sims[todo],
                overlaps[todo],
                SCORE_VERSION,
            )
        return ci, cj, sims, overlaps, int(len(ci) - todo.sum())

    if workers <= 1:
        yield from (remember(score(*job)) for job in jobs())
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="align") as pool:
        in_flight: deque = deque()
        for job in jobs():
            in_flight.append(pool.submit(score, *job))
            if len(in_flight) > 2 * workers:
                yield remember(in_flight.popleft().result())
        while in_flight:
            yield remember(in_flight.popleft().result())


def _components(roots: list[int]) -> list[list[int]]:
    """Groups of two or more positions sharing a root, each sorted, the list sorted."""
    if not roots:
        return []
    roots_arr = np.asarray(roots, np.int64)
    order = np.argsort(roots_arr, kind="stable")
    bounds = np.flatnonzero(np.diff(roots_arr[order])) + 1
    groups = [g.tolist() for g in np.split(order, bounds) if len(g) > 1]
    return sorted(groups)


class _PairSpools:
    """Pairs (i, j) by Hamming distance, in files under ``folder`` (in memory when None).

    :meth:`chunks` yields them distance by distance, closest first, in the order added.
    """

    def __init__(self, folder: str | os.PathLike | None, name: str) -> None:
        self.folder = None if folder is None else Path(folder)
        self.name = name
        self._buffers: dict[int, list[np.ndarray]] = {}
        self._buffered: dict[int, int] = {}
        self._files: dict[int, Any] = {}
        self._count = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self._count

    def add(self, i: np.ndarray, j: np.ndarray, distance: np.ndarray | int) -> None:
        if len(i) == 0:
            return
        distance = np.broadcast_to(np.asarray(distance, np.uint8), i.shape)
        self._count += len(i)
        for d in np.unique(distance).tolist():
            pick = distance == d
            record = np.stack([i[pick], j[pick]], axis=1).astype(np.int32)
            self._buffers.setdefault(d, []).append(record)
            self._buffered[d] = self._buffered.get(d, 0) + len(record)
            if self.folder is not None and self._buffered[d] >= _SPOOL_BUFFER:
                self._flush(d)

    def _flush(self, d: int) -> None:
        if not self._buffers.get(d):
            return
        if d not in self._files:
            path = self.folder / f"{self.name}-{id(self)}-{d:02d}.i32"
            self._files[d] = open(path, "w+b")  # noqa: SIM115
        self._files[d].write(np.concatenate(self._buffers[d]).tobytes())
        self._buffers[d], self._buffered[d] = [], 0

    def chunks(self, size: int = _SPOOL_BUFFER):
        """(i, j, distance) arrays of at most ``size`` pairs, closest hashes first."""
        for d in sorted(set(self._buffers) | set(self._files)):
            if d in self._files:
                self._flush(d)
                handle = self._files[d]
                handle.flush()
                handle.seek(0)
                while True:
                    raw = handle.read(size * 8)
                    if not raw:
                        break
                    pairs = np.frombuffer(raw, np.int32).reshape(-1, 2).astype(np.int64)
                    yield pairs[:, 0], pairs[:, 1], d
            else:
                pairs = (
                    np.concatenate(self._buffers[d]).astype(np.int64)
                    if self._buffers[d]
                    else np.empty((0, 2), np.int64)
                )
                for start in range(0, len(pairs), size):
                    part = pairs[start : start + size]
                    yield part[:, 0], part[:, 1], d

    def close(self) -> None:
        """Delete the files and buffers."""
        for handle in self._files.values():
            path = Path(handle.name)
            handle.close()
            path.unlink(missing_ok=True)
        self._files, self._buffers, self._buffered = {}, {}, {}


def score_pairs(fingerprints: Sequence[Fingerprint], pairs) -> list[PairScore]:
    """The measures :func:`find_duplicate_groups` thresholds, for given pairs of indices.

    Every pair is scored in full (no Hamming radius and no prefilter gate), in batches;
    ``pairs`` is an (m, 2) array-like of indices into ``fingerprints``. Symmetric: (i, j) and
    (j, i) score the same. Use it to calibrate thresholds on your own data.
    """
    for k, fp in enumerate(fingerprints):
        if not isinstance(fp, Fingerprint):
            raise TypeError(f"fingerprints[{k}] is a {type(fp).__name__}, not a Fingerprint")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(fingerprints)):
        raise IndexError(f"pairs must index {len(fingerprints)} fingerprints")
    store = _MemoryStore(fingerprints)
    sims, overlaps = _score_pairs(store, pairs)
    prefilter = _prefilter(store, pairs)
    hashes = [int(fp.phash) for fp in fingerprints]
    return [
        PairScore((hashes[i] ^ hashes[j]).bit_count(), float(pre), float(sim), float(ov))
        for (i, j), pre, sim, ov in zip(pairs.tolist(), prefilter, sims, overlaps, strict=True)
    ]


def compare(a: Fingerprint, b: Fingerprint) -> PairScore:
    """Hamming distance, prefilter correlation, similarity and overlap of two fingerprints.

    See :func:`score_pairs`. The stereo motorcycle pair: close hashes, low similarity.

    Examples
    --------
    >>> from skimage import data
    >>> left, right, _ = data.stereo_motorcycle()
    >>> score = compare(fingerprint(left), fingerprint(right))
    >>> score.hamming, round(score.similarity, 2)
    (4, 0.47)
    """
    return score_pairs([a, b], [[0, 1]])[0]


#: A duplicate counts as blurred when its sharpness is this far below the sharpest member
#: of its size (0.15 ≈ a Gaussian blur of σ 0.5-0.7 px on photographs; re-encoding moves
#: sharpness by ≤ 0.05).
KEEPER_BLUR_MARGIN = 0.15
#: A duplicate counts as noisy when its noise σ exceeds ``2 × the least noisy + 1`` grey level.
KEEPER_NOISE_FACTOR = 2.0
KEEPER_NOISE_MARGIN = 1.0


def choose_keeper(
    indices: Sequence[int], quality: Sequence[dict], derived: Collection[int] = ()
) -> int:
    """The member of a duplicate group to keep: the source, then the one with the most
    information.

    Ranks by, in order:

    0. not derived from another member (``derived``: indices found to be copies made from
       another member — a higher-quality re-encode or a lossless copy of a JPEG member, an
       alpha-composited, CMYK or tone-shifted copy; see
       :mod:`restorelab.curation.provenance`);
    1. most pixels (``width`` × ``height``);
    2. fewest visible degradations relative to the other members of that size: *blurred*
       (``sharpness`` more than :data:`KEEPER_BLUR_MARGIN` below the sharpest) and *noisy*
       (``noise_sigma`` above ``KEEPER_NOISE_FACTOR`` × the lowest + ``KEEPER_NOISE_MARGIN``).
       A blurred or noisy copy saved at a higher JPEG quality than its original is thus not
       preferred to it;
    3. least compressed (higher ``jpeg_quality``; ``None`` means lossless, the best);
    4. sharpest (higher ``sharpness``);
    5. the lowest index.

    A missing key ranks last on its criterion (unknown size counts as 0 pixels, unknown
    compression below any JPEG quality, unknown sharpness below any value) and never makes a
    member blurred or noisy.

    Parameters
    ----------
    indices : sequence of int
        The group, as indices into ``quality``.
    quality : sequence of dict
        Per image: ``width``, ``height``, ``jpeg_quality``, ``sharpness``, ``noise_sigma``.

    Examples
    --------
    >>> q = [{"width": 100, "height": 100, "jpeg_quality": 90},
    ...      {"width": 300, "height": 300, "jpeg_quality": 60},
    ...      {"width": 300, "height": 300, "jpeg_quality": None}]
    >>> choose_keeper([0, 1, 2], q)
    2
    >>> original = {"width": 9, "height": 9, "jpeg_quality": 75, "sharpness": 2.1}
    >>> blurred_copy = {"width": 9, "height": 9, "jpeg_quality": 95, "sharpness": 1.6}
    >>> choose_keeper([0, 1], [original, blurred_copy])
    0
    """
    if len(indices) == 0:
        raise ValueError("choose_keeper needs at least one index")
    members = [int(i) for i in indices]
    info = {i: quality[i] or {} for i in members}

    def pixels(i: int) -> float:
        return float(info[i].get("width") or 0) * float(info[i].get("height") or 0)

    def value(i: int, key: str) -> float | None:
        raw = info[i].get(key)
        return None if raw is None else float(raw)

    # the sharpest and the least noisy member of each size (pixel count), once: O(k)
    sharpest: dict[float, float] = {}
    least_noisy: dict[float, float] = {}
    for j in members:
        size = pixels(j)
        if (v := value(j, "sharpness")) is not None:
            sharpest[size] = max(sharpest.get(size, -np.inf), v)
        if (v := value(j, "noise_sigma")) is not None:
            least_noisy[size] = min(least_noisy.get(size, np.inf), v)

    def degradations(i: int) -> int:
        mine_sharp, mine_noise = value(i, "sharpness"), value(i, "noise_sigma")
        size = pixels(i)
        blurred = mine_sharp is not None and mine_sharp < sharpest[size] - KEEPER_BLUR_MARGIN
        noisy = mine_noise is not None and mine_noise > (
            KEEPER_NOISE_FACTOR * least_noisy[size] + KEEPER_NOISE_MARGIN
        )
        return int(blurred) + int(noisy)

    def rank(i: int) -> tuple[bool, float, int, float, float, int]:
        if "jpeg_quality" not in info[i]:
            compression = -np.inf
        elif info[i]["jpeg_quality"] is None:
            compression = np.inf
        else:
            compression = float(info[i]["jpeg_quality"])
        sharp = value(i, "sharpness")
        sharpness = -np.inf if sharp is None else sharp
        return (i in derived_set, -pixels(i), degradations(i), -compression, -sharpness, i)

    derived_set = {int(i) for i in derived}
    return min(members, key=rank)


# --- candidates ------------------------------------------------------------------------------


def _normalise(stack: np.ndarray) -> np.ndarray:
    """Zero mean, unit RMS per image of an (N, h, w) stack (flat images stay zero)."""
    stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    rms = np.sqrt((stack * stack).mean(axis=(1, 2), keepdims=True))
    return stack / np.where(rms > 1e-6, rms, 1.0)


def _blur(stack: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image of an (N, h, w) float32 stack (reflected borders)."""
    return np.stack(
        [cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for img in stack]
    )


def _shrink(stack: np.ndarray, size: int) -> np.ndarray:
    """Area-interpolated (N, size, size) copy of an (N, h, w) float32 stack."""
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in stack])


def prefilter_vectors(thumbs: np.ndarray) -> np.ndarray:
    """The vectors whose dot products are the prefilter correlations, (N, 256) float32.

    Of each (64, 64) ``uint8`` thumbnail: shrunk to 16×16 (area), blurred (σ 1 px),
    normalised to zero mean and unit RMS, divided by 16. Each row depends on its own
    thumbnail only, so the rows can be computed once per image and stored.
    """
    thumbs = np.asarray(thumbs).reshape(-1, THUMB_SIZE, THUMB_SIZE).astype(np.float32)
    if len(thumbs) == 0:
        return np.empty((0, _PREFILTER_SIZE * _PREFILTER_SIZE), np.float32)
    small = _shrink(thumbs, _PREFILTER_SIZE)
    return _normalise(_blur(small, 1.0)).reshape(len(thumbs), -1) / _PREFILTER_SIZE


def _dot_rows(va: np.ndarray, vb: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """``va[ia[k]] · vb[ib[k]]`` for every k, in chunks (float32 sums, as float64)."""
    out = np.empty(len(ia))
    for start in range(0, len(ia), _PREFILTER_CHUNK):
        a, b = ia[start : start + _PREFILTER_CHUNK], ib[start : start + _PREFILTER_CHUNK]
        out[start : start + len(a)] = np.einsum("pk,pk->p", va[a], vb[b])
    return out


def fingerprint_key(phash: int, thumb: np.ndarray) -> bytes:
    """A 128-bit BLAKE2b digest of a fingerprint (its pHash and thumbnail bytes): what
    the alignment scores of a pair are kept under, since they depend on the two
    fingerprints only."""
    digest = hashlib.blake2b(int(phash).to_bytes(8, "little"), digest_size=16)
    digest.update(np.ascontiguousarray(thumb, np.uint8).tobytes())
    return digest.digest()


class ScoreMemo(Protocol):
    """Where :func:`group_store` keeps the alignment scores of the pairs it aligned, so that
    a re-run (the same images, or new thresholds) aligns only pairs never aligned before.
    Keys are :func:`fingerprint_key` digests as ``(k, 16)`` ``uint8`` rows; a pair's score
    does not depend on the order of its two keys. :class:`restorelab.curation.cache.
    AnalysisCache` is one."""

    def pair_scores(
        self, a: np.ndarray, b: np.ndarray, version: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, similarity, overlap) of the pairs (a[k], b[k]); NaN where not found."""
        ...

    def put_pair_scores(
        self, a: np.ndarray, b: np.ndarray, sims: np.ndarray, overlaps: np.ndarray, version: int
    ) -> None:
        """Keep the scores of the pairs (a[k], b[k])."""
        ...


class ThumbnailStore:
    """Fingerprints of many images, of which only the hashes stay in memory.

    Near-duplicate grouping needs, for every image, its pHash (8 bytes, held in memory), its
    prefilter vector (1 KB) for every candidate pair, and its thumbnail (4 KB) only for the
    pairs that are aligned. This store keeps the vectors and thumbnails in two files under
    ``folder`` (appended in index order, read back with positioned reads: no memory map, so
    they never count in the process's resident memory) and fetches them per block of
    candidate pairs. Index ``k`` is the ``k``-th :meth:`append` (``None`` for an image
    without a fingerprint: a placeholder that is never a member).
    """

    _CHUNK = 4096

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thumbs = open(self.folder / "thumbs.u8", "w+b")  # noqa: SIM115
        self._vectors = open(self.folder / "prefilter.f32", "w+b")  # noqa: SIM115
        self._hashes = np.zeros(self._CHUNK, np.uint64)
        self._keys = np.zeros((self._CHUNK, 16), np.uint8)
        self._count = 0
        self._pending: list[np.ndarray] = []
        self._pending_from = 0

    def __len__(self) -> int:
        return self._count

    @property
    def phashes(self) -> np.ndarray:
        """The 64-bit hashes, ``uint64`` (0 for placeholders)."""
        return self._hashes[: self._count]

    @property
    def keys(self) -> np.ndarray:
        """The (n, 16) ``uint8`` :func:`fingerprint_key` of each image (zeros for
        placeholders)."""
        return self._keys[: self._count]

    def append(self, fp: Fingerprint | None) -> int:
        """Add one image's fingerprint (or a placeholder); returns its index."""
        if self._count == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
        thumb = np.zeros((THUMB_SIZE, THUMB_SIZE), np.uint8) if fp is None else fp.thumb
        self._hashes[self._count] = 0 if fp is None else int(fp.phash)
        if fp is not None:
            self._keys[self._count] = np.frombuffer(fingerprint_key(fp.phash, thumb), np.uint8)
        self._pending.append(thumb)
        self._count += 1
        if len(self._pending) >= 256:
            self.flush()
        return self._count - 1

    def flush(self) -> None:
        """Write the thumbnails and prefilter vectors appended since the last flush."""
        if not self._pending:
            return
        thumbs = np.stack(self._pending)
        self._thumbs.seek(self._pending_from * THUMB_SIZE * THUMB_SIZE)
        self._thumbs.write(thumbs.tobytes())
        self._vectors.seek(self._pending_from * _PREFILTER_SIZE * _PREFILTER_SIZE * 4)
        self._vectors.write(prefilter_vectors(thumbs).astype(np.float32).tobytes())
        self._pending_from += len(self._pending)
        self._pending = []

    def _rows(self, handle, width: int, dtype, index: np.ndarray) -> np.ndarray:
        self.flush()
        handle.flush()
        index = np.asarray(index, np.int64).ravel()
        item = width * np.dtype(dtype).itemsize
        out = np.empty((len(index), width), dtype)
        if len(index) == 0:
            return out
        lo, hi = int(index.min()), int(index.max()) + 1
        fd = handle.fileno()
        if hi - lo <= 4 * len(index):  # one read of the span, then pick
            span = np.frombuffer(os.pread(fd, (hi - lo) * item, lo * item), dtype)
            out[:] = span.reshape(hi - lo, width)[index - lo]
        else:
            for k, i in enumerate(index.tolist()):
                out[k] = np.frombuffer(os.pread(fd, item, i * item), dtype)
        return out

    def thumbs(self, index: np.ndarray) -> np.ndarray:
        """The (k, 64, 64) ``uint8`` thumbnails of images ``index``."""
        rows = self._rows(self._thumbs, THUMB_SIZE * THUMB_SIZE, np.uint8, index)
        return rows.reshape(-1, THUMB_SIZE, THUMB_SIZE)

    def vectors(self, index: np.ndarray) -> np.ndarray:
        """The (k, 256) ``float32`` prefilter vectors of images ``index``."""
        width = _PREFILTER_SIZE * _PREFILTER_SIZE
        return self._rows(self._vectors, width, np.float32, index)

    def close(self) -> None:
        """Close the files (they stay under ``folder``)."""
        self._thumbs.close()
        self._vectors.close()


class _MemoryStore:
    """:class:`ThumbnailStore`'s reading interface over fingerprints in memory."""

    def __init__(self, fingerprints: Sequence[Fingerprint]) -> None:
        self.fingerprints = fingerprints
        self.phashes = np.array([int(fp.phash) for fp in fingerprints], dtype=np.uint64)
        self._vectors: np.ndarray | None = None

    @functools.cached_property
    def keys(self) -> np.ndarray:
        keys = b"".join(fingerprint_key(fp.phash, fp.thumb) for fp in self.fingerprints)
        return np.frombuffer(keys, np.uint8).reshape(-1, 16)

    def thumbs(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, np.int64).ravel()
        if len(index) == 0:
            return np.empty((0, THUMB_SIZE, THUMB_SIZE), np.uint8)
        return np.stack([self.fingerprints[k].thumb for k in index.tolist()])

    def vectors(self, index: np.ndarray) -> np.ndarray:
        if self._vectors is None:
            all_thumbs = self.thumbs(np.arange(len(self.fingerprints)))
            self._vectors = prefilter_vectors(all_thumbs)
        return self._vectors[np.asarray(index, np.int64).ravel()]


def _identical(store, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether the fingerprints of images a[k] and b[k] are equal (hash and thumbnail)."""
    same = store.phashes[a] == store.phashes[b]
    for k in np.nonzero(same)[0].tolist():
        pair = store.thumbs(np.array([a[k], b[k]]))
        same[k] = np.array_equal(pair[0], pair[1])
    return same


def _prefilter(store, pairs: np.ndarray) -> np.ndarray:
    """Unaligned correlation of the 16×16 blurred thumbnails of each pair (1 for
    identical fingerprints, whatever their content: flat images correlate 0)."""
    if len(pairs) == 0:
        return np.empty(0)
    used, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    vec = store.vectors(used)
    out = _dot_rows(vec, vec, local[:, 0], local[:, 1])
    out[_identical(store, pairs[:, 0], pairs[:, 1])] = 1.0
    return out


# --- confirmation ----------------------------------------------------------------------------


def _score_pairs(store, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity and overlap of each pair; each pair is ordered by content, not by index."""
    if len(pairs) == 0:
        return np.empty(0), np.empty(0)
    used, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    thumbs = store.thumbs(used)
    hashes = store.phashes[used].tolist()
    keys = [(int(h), t.tobytes()) for h, t in zip(hashes, thumbs, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), np.int64)  # equal fingerprints share the rank of the first
    for pos, k in enumerate(order):
        same = pos > 0 and keys[order[pos - 1]] == keys[k]
        rank[k] = rank[order[pos - 1]] if same else pos
    ra, rb = rank[local[:, 0]], rank[local[:, 1]]
    swap = ra > rb
    a = np.where(swap, pairs[:, 1], pairs[:, 0])
    b = np.where(swap, pairs[:, 0], pairs[:, 1])
    position = np.full(int(used.max()) + 1, -1, np.int64)
    position[used] = np.arange(len(used))
    sims, overlaps, _ = _confirm(lambda index: thumbs[position[index]], a, b)
    sims[ra == rb], overlaps[ra == rb] = 1.0, 1.0
    return sims, overlaps


def _confirm(thumbs_of: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray):
    """Similarity, overlap and coarse similarity of the pairs (a[k], b[k]).

    The coarse levels run in both directions, warping A onto B and B onto A, since the fit is
    biased when the warped image is the smaller crop (fewer pixels then count); the direction
    with the better coarse band-pass correlation goes on to the last level, unless that
    correlation is below :data:`_COARSE_MIN`: such pairs stop with similarity 0.
    """
    sims, overlaps, coarse = np.zeros(len(a)), np.zeros(len(a)), np.zeros(len(a))
    coarse_levels, last_level = range(len(_LEVELS) - 1), range(len(_LEVELS) - 1, len(_LEVELS))
    for start in range(0, len(a), _BATCH):
        used, local = np.unique(
            np.concatenate([a[start : start + _BATCH], b[start : start + _BATCH]]),
            return_inverse=True,
        )
        prep = _Prepared(thumbs_of(used).astype(np.float32))
        m = len(local) // 2
        fa, fb = local, np.concatenate([local[m:], local[:m]])
        params = np.tile(np.array([1.0, 0.5, 1.0, 0.5], np.float32), (2 * m, 1))
        gain, bias = np.ones(2 * m, np.float32), np.zeros(2 * m, np.float32)
        params, gain, bias = prep.fit(coarse_levels, fa, fb, params, gain, bias)
        score = prep.score(_LEVELS[-2][0], fa, fb, params)
        pick = np.where(score[m:] > score[:m], np.arange(m) + m, np.arange(m))
        coarse[start : start + m] = score[pick]
        go = score[pick] >= _COARSE_MIN
        if not go.any():
            continue
        pick = pick[go]
        fa, fb = fa[pick], fb[pick]
        params, _, _ = prep.fit(last_level, fa, fb, params[pick], gain[pick], bias[pick])
        out = start + np.nonzero(go)[0]
        sims[out] = prep.score(THUMB_SIZE, fa, fb, params)
        overlaps[out] = _overlap(params)
    return sims, overlaps, coarse


class _Prepared:
    """The images one batch of pairs is aligned and scored on.

    Per level of :data:`_LEVELS`, the thumbnails at that size, blurred (band-passed where the
    level's sigma is ``None``) and normalised, as (row, column) images and transposed; and the
    band-passed images at each size.
    """

    def __init__(self, thumbs: np.ndarray) -> None:
        full = _normalise(thumbs)
        sizes = {size for size, _, _ in _LEVELS}
        base = {n: full if n == THUMB_SIZE else _normalise(_shrink(full, n)) for n in sizes}
        self.band = {}
        for n, img in base.items():
            band = _normalise(_blur(img, _BAND[0]) - _blur(img, _BAND[1]))
            self.band[n] = (band, np.ascontiguousarray(band.transpose(0, 2, 1)))
        self.levels = []
        for n, sigma, _ in _LEVELS:
            if sigma is None:
                self.levels.append(self.band[n])
            else:
                img = _normalise(_blur(base[n], sigma))
                self.levels.append((img, np.ascontiguousarray(img.transpose(0, 2, 1))))

    def fit(self, levels: range, a, b, params, gain, bias):
        """Run the Gauss–Newton steps of ``levels`` for the pairs (a[k], b[k])."""
        for k in levels:
            img, img_t = self.levels[k]
            params, gain, bias = _fit(img[a], img_t[b], params, gain, bias, _LEVELS[k][2])
        return params, gain, bias

    def score(self, size: int, a, b, params) -> np.ndarray:
        """Band-pass correlation of warped A and B at thumbnail side ``size``."""
        band, band_t = self.band[size]
        warped, inside, _, _ = _warp(band[a], params, derivatives=False)
        return _masked_ncc(warped, band_t[b], inside)


def _axis_map(scale: np.ndarray, centre: np.ndarray, n: int):
    """Sample positions along one axis: output pixel centre u ↦ scale·(u − ½) + centre.

    Coordinates run over [0, 1] across the image; parametrising about the middle keeps scale
    and shift nearly uncorrelated, which the Gauss–Newton steps need. Returns the left
    neighbour, the interpolation weight, and whether the position lies inside the source,
    each (P, n).
    """
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n
    pos = (scale[:, None] * (centres[None, :] - 0.5) + centre[:, None]) * n - 0.5
    inside = (pos >= -0.5) & (pos <= n - 0.5)
    pos = np.clip(pos, 0, n - 1)
    left = np.minimum(pos.astype(np.intp), n - 2)
    return left, (pos - left).astype(np.float32), inside


def _gather(stack: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``stack[p, index[p, k], :]`` as (P, r, m), for (P, n, m) ``stack`` and (P, r) ``index``."""
    pairs, n, m = stack.shape
    flat = (index + (np.arange(pairs) * n)[:, None]).ravel()
    return stack.reshape(pairs * n, m)[flat].reshape(pairs, index.shape[1], m)


def _warp(stack: np.ndarray, params: np.ndarray, *, derivatives: bool):
    """Bilinear resampling of (P, n, n) images under a per-axis scale and shift.

    ``params`` is (P, 4): scale_x, centre_x, scale_y, centre_y (see :func:`_axis_map`). The
    source is (row, column); the results are (column, row): the warped images, the mask of
    output pixels inside the source and, with ``derivatives``, the interpolant's derivatives
    along the source's columns and rows.
    """
    n = stack.shape[-1]
    fx, wx, in_x = _axis_map(params[:, 0], params[:, 1], n)
    fy, wy, in_y = _axis_map(params[:, 2], params[:, 3], n)
    r0, r1 = _gather(stack, fy), _gather(stack, fy + 1)
    drow = r1 - r0
    rows_t = np.ascontiguousarray((r0 + wy[:, :, None] * drow).transpose(0, 2, 1))
    c0, c1 = _gather(rows_t, fx), _gather(rows_t, fx + 1)
    dx = c1 - c0
    warped = c0 + wx[:, :, None] * dx
    inside = in_x[:, :, None] & in_y[:, None, :]
    if not derivatives:
        return warped, inside, None, None
    drow_t = np.ascontiguousarray(drow.transpose(0, 2, 1))
    e0, e1 = _gather(drow_t, fx), _gather(drow_t, fx + 1)
    return warped, inside, dx, e0 + wx[:, :, None] * (e1 - e0)


def _fit(img_a, img_b_t, params, gain, bias, steps: int):
    """Gauss–Newton steps fitting B(u, v) ≈ gain·A(sx·(u − ½) + cx, sy·(v − ½) + cy) + bias.

    ``img_a`` is (P, n, n) (row, column), ``img_b_t`` the targets transposed (column, row).
    Only B's pixels that land inside A count. A little Levenberg damping keeps flat images
    and tiny overlaps solvable; parameters are clipped to :data:`_SCALE_BOUNDS` and
    :data:`_CENTRE_BOUNDS`.
    """
    pairs, n, _ = img_a.shape
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    cx, cy = centres[None, :, None], centres[None, None, :]
    diag = np.arange(6)
    jac = np.empty((pairs, 6, n, n), np.float32)
    flat = jac.reshape(pairs, 6, n * n)
    for _ in range(steps):
        warped, inside, dx, dy = _warp(img_a, params, derivatives=True)
        mask = inside.astype(np.float32)
        g = (gain * n)[:, None, None] * mask
        np.multiply(g, dx, out=jac[:, 1])
        np.multiply(jac[:, 1], cx, out=jac[:, 0])
        np.multiply(g, dy, out=jac[:, 3])
        np.multiply(jac[:, 3], cy, out=jac[:, 2])
        np.multiply(warped, mask, out=jac[:, 4])
        jac[:, 5] = mask
        resid = gain[:, None, None] * jac[:, 4] + (bias[:, None, None] - img_b_t) * mask
        hess = flat @ flat.transpose(0, 2, 1)
        hess[:, diag, diag] += 1e-3 * hess[:, diag, diag] + 1e-6
        step = np.linalg.solve(hess, -(flat @ resid.reshape(pairs, -1, 1)))[:, :, 0]
        params = params + step[:, :4]
        gain, bias = gain + step[:, 4], bias + step[:, 5]
        params[:, 0::2] = np.clip(params[:, 0::2], *_SCALE_BOUNDS)
        params[:, 1::2] = np.clip(params[:, 1::2], *_CENTRE_BOUNDS)
    return params, gain, bias


def _overlap(params: np.ndarray) -> np.ndarray:
    """Intersection over union of B's footprint in A and A's own unit square."""
    sx, cx, sy, cy = (params[:, k].astype(np.float64) for k in range(4))
    ix = np.clip(np.minimum(1.0, cx + sx / 2) - np.maximum(0.0, cx - sx / 2), 0.0, None)
    iy = np.clip(np.minimum(1.0, cy + sy / 2) - np.maximum(0.0, cy - sy / 2), 0.0, None)
    inter = ix * iy
    return inter / (1.0 + sx * sy - inter)


def _masked_ncc(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of (P, h, w) stacks over each pair's mask (0 if flat)."""
    m = mask.astype(np.float64)
    count = np.maximum(m.sum(axis=(1, 2)), 1.0)[:, None, None]
    x, y = x.astype(np.float64), y.astype(np.float64)
    xc = (x - (x * m).sum(axis=(1, 2))[:, None, None] / count) * m
    yc = (y - (y * m).sum(axis=(1, 2))[:, None, None] / count) * m
    den = np.sqrt((xc * xc).sum(axis=(1, 2)) * (yc * yc).sum(axis=(1, 2)))
    return np.where(den > 1e-12, (xc * yc).sum(axis=(1, 2)) / np.maximum(den, 1e-12), 0.0)
