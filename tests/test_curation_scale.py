"""Curation at scale: the streamed near-duplicate search, the on-disk stores and the
reduced selection problem give the results of the all-in-memory definitions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from restorelab.curation import dedup
from restorelab.curation.dedup import (
    ThumbnailStore,
    _MemoryStore,
    _prefilter,
    _score_pairs,
    find_duplicate_groups,
    fingerprint,
    group_store,
    hamming_pairs,
    prefilter_vectors,
)
from restorelab.curation.records import Columns, DigestSet, RecordStore


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def pool() -> list:
    """About 300 fingerprints of small crops of six photos, a third of them with copies
    (JPEG, resized, 3 % crops), others overlapping crops of the same photo."""
    rng = np.random.default_rng(7)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    photos += [data.immunohistochemistry(), data.retina()[::3, ::3]]
    fps = []
    while len(fps) < 300:
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(72, 140))
        y, x = int(rng.integers(h - side)), int(rng.integers(w - side))
        crop = np.ascontiguousarray(photo[y : y + side, x : x + side])
        fps.append(fingerprint(crop))
        if rng.random() < 0.35:
            fps.append(fingerprint(_jpeg(crop, 70)))
            small = cv2.resize(crop, (side * 3 // 4, side * 3 // 4), interpolation=cv2.INTER_AREA)
            fps.append(fingerprint(small))
            d = max(1, side * 3 // 100)
            fps.append(fingerprint(np.ascontiguousarray(crop[d:-d, d:-d])))
    return fps


def _brute_force_groups(fps, radius=dedup.DEFAULT_HAMMING_RADIUS):
    """The definition: every candidate within the radius that passes the prefilter is
    scored; groups are the connected components of the confirmed pairs."""
    store = _MemoryStore(fps)
    pairs = hamming_pairs(store.phashes, radius)
    pre = _prefilter(store, pairs)
    survivors = pairs[pre >= dedup._PREFILTER_MIN]
    sims, overlaps = _score_pairs(store, survivors)
    good = survivors[(sims >= dedup.DEFAULT_MIN_SIMILARITY) & (overlaps >= 0.75)]
    parent = list(range(len(fps)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in good.tolist():
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(len(fps)):
        members.setdefault(root(i), []).append(i)
    groups = sorted(g for g in members.values() if len(g) > 1)
    return groups, len(pairs), len(survivors)


def test_streamed_grouping_equals_scoring_every_candidate(pool, tmp_path, monkeypatch) -> None:
    reference, candidates, survivors = _brute_force_groups(pool)
    assert len(reference) > 20 and survivors > len(pool) // 2  # the pool has work in it
    assert find_duplicate_groups(pool) == reference
    # small tiles, chunks and spool buffers: many tiles, spool files, several chunks a round
    monkeypatch.setattr(dedup, "_TILE", 37)
    monkeypatch.setattr(dedup, "_SCORE_CHUNK", 16)
    monkeypatch.setattr(dedup, "_SPOOL_BUFFER", 8)
    monkeypatch.setattr(dedup, "_PREFILTER_CHUNK", 5)
    store = ThumbnailStore(tmp_path / "thumbs")
    store.append(None)  # placeholders (undecodable inputs) are never members
    for fp in pool:
        store.append(fp)
        store.append(None)
    members = np.arange(1, 2 * len(pool) + 1, 2)
    for workers in (1, 2):
        stats: dict = {}
        groups = group_store(
            store, members, spool_dir=tmp_path / "pairs", stats=stats, workers=workers
        )
        assert groups == reference
        assert stats["candidates"] == candidates and stats["prefilter_passed"] == survivors
        assert stats["hash_comparisons"] == len(pool) * (len(pool) - 1) // 2
        assert 0 < stats["confirmed"] <= stats["aligned"] <= survivors
        assert stats["groups"] == len(reference)
        assert not list((tmp_path / "pairs").iterdir())  # spool files deleted
    store.close()


def test_alignment_scores_kept_in_the_cache_are_not_aligned_again(
    pool, tmp_path, monkeypatch
) -> None:
    """With the analysis cache as memo, the groups are those without it; a re-run reuses
    every score (aligning nothing), at another threshold too; a shard's scores merge."""
    from restorelab.curation.cache import AnalysisCache

    reference, _, _ = _brute_force_groups(pool)
    store = ThumbnailStore(tmp_path / "thumbs")
    for fp in pool:
        store.append(fp)
    members = np.arange(len(pool))
    cache = AnalysisCache(tmp_path / "cache")
    first: dict = {}
    assert group_store(store, members, stats=first, workers=2, memo=cache) == reference
    assert first["scores_reused"] == 0 and first["aligned"] > 0

    def no_alignment(*args, **kwargs):
        raise AssertionError("a pair was aligned again")

    with monkeypatch.context() as patched:
        patched.setattr(dedup, "_score_pairs", no_alignment)
        again: dict = {}
        assert group_store(store, members, stats=again, memo=cache) == reference
        assert again["scores_reused"] == again["aligned"] == first["aligned"]
    stricter = group_store(store, members, min_similarity=0.9)
    assert group_store(store, members, min_similarity=0.9, memo=cache) == stricter
    # the keys are the fingerprints': the scores hold for any order and merge across caches
    keys = store.keys
    a, b = keys[members[:40]], keys[members[1:41]]
    found, sims, overlaps = cache.pair_scores(a, b, dedup.SCORE_VERSION)
    assert found.any() and np.isnan(sims[~found]).all()
    assert np.array_equal(cache.pair_scores(b, a, dedup.SCORE_VERSION)[1], sims, equal_nan=True)
    assert not cache.pair_scores(a, b, dedup.SCORE_VERSION + 1)[0].any()
    merged = AnalysisCache(tmp_path / "merged")
    merged.merge_from(tmp_path / "cache")
    assert np.array_equal(
        merged.pair_scores(a, b, dedup.SCORE_VERSION)[2], overlaps, equal_nan=True
    )
    merged.close()
    cache.close()
    store.close()


def test_prefilter_vectors_are_per_image(pool) -> None:
    """Vectors computed one image at a time, in batches or all at once are equal, so the
    store can compute them once when an image is added."""
    thumbs = np.stack([fp.thumb for fp in pool[:50]])
    together = prefilter_vectors(thumbs)
    one_by_one = np.concatenate([prefilter_vectors(t[None]) for t in thumbs])
    assert together.dtype == np.float32 and together.shape == (50, 256)
    assert np.array_equal(together, one_by_one)
    assert np.array_equal(prefilter_vectors(thumbs[10:30]), together[10:30])


def test_grouping_reads_thumbnails_only_for_the_pairs_it_aligns(pool, tmp_path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    for fp in pool:
        store.append(fp)
    assert len(store._pending) < 256  # at most one write buffer of thumbnails is held
    store.flush()
    assert not store._pending
    assert np.array_equal(
        store.thumbs(np.array([3, 0, 3])), np.stack([pool[k].thumb for k in (3, 0, 3)])
    )
    read: list[int] = []
    real = store.thumbs

    def counting(index):
        read.extend(np.asarray(index).tolist())
        return real(index)

    store.thumbs = counting
    stats: dict = {}
    group_store(store, np.arange(len(pool)), stats=stats)
    # only images in pairs that passed the prefilter (or had equal hashes) were read
    memory = _MemoryStore(pool)
    pairs = hamming_pairs(memory.phashes, dedup.DEFAULT_HAMMING_RADIUS)
    passed = pairs[_prefilter(memory, pairs) >= dedup._PREFILTER_MIN]
    assert set(read) <= set(passed.ravel().tolist())
    assert len(set(read)) < len(pool)
    store.close()


def test_selection_among_the_candidate_pool_equals_selection_among_all() -> None:
    from restorelab.curation.pipeline import _selection_pool
    from restorelab.curation.selection import select_explained

    rng = np.random.default_rng(3)
    m, target = 600, 40
    scores = np.round(rng.random(m), 2)  # ties on purpose
    embeddings = rng.normal(size=(m, 8))
    names = ["a", "b", "c"]
    codes = rng.integers(0, 3, m)
    categories = [names[c] for c in codes]
    for quotas in ({}, {"a": 10, "c": 0.25}):
        full = select_explained(
            target, scores, embeddings, categories=categories, quotas=quotas or None
        )
        counts = {names.index(k): v for k, v in {"a": 10, "c": 10}.items()} if quotas else {}
        sub = _selection_pool(scores, codes, counts, target, 2.0)
        assert len(sub) < m
        chosen, candidates = select_explained(
            target,
            scores[sub],
            embeddings[sub],
            categories=[categories[i] for i in sub],
            quotas=quotas or None,
        )
        assert [int(sub[i]) for i in chosen] == full[0]
        assert {int(sub[i]) for i in candidates} == full[1]


def test_record_store_and_columns_round_trip(tmp_path) -> None:
    from restorelab.curation.pipeline import _Record

    store = RecordStore(tmp_path / "records.sqlite")
    for k in range(1200):
        store.add(_Record(k, f"src{k}", None, "", {"k": k}, reason="bad" if k % 3 == 0 else None))
    got = store.get([1199, 5, 0])
    assert [r.index for r in got] == [1199, 5, 0] and got[2].reason == "bad"
    store.set_reasons([(5, "near duplicate: of src4")])
    assert store.get([5])[0].reason == "near duplicate: of src4"
    assert [r.index for r in store.iter(np.array([0, 3, 1000]))] == [0, 3, 1000]
    assert sum(1 for _ in store.iter()) == 1200
    with pytest.raises(KeyError):
        store.get([5000])
    store.close()
    assert not (tmp_path / "records.sqlite").exists()
    columns = Columns(capacity=2)
    for k in range(5):
        columns.append(
            alive=k != 2,
            fails=k == 4,
            pixel_hash=f"{k:032x}",
            quality=None if k == 2 else k / 10,
            category=None if k == 1 else "xy"[k % 2],
            cache_hit=False,
        )
    assert len(columns) == 5 and columns.alive.tolist() == [True, True, False, True, True]
    assert np.isnan(columns.quality[2]) and columns.quality[3] == 0.3
    assert [columns.category_of(k) for k in range(5)] == ["x", None, "x", "y", "x"]


@pytest.mark.parametrize("size", [8, 16])
def test_digest_set_holds_the_same_keys_as_a_set(size: int) -> None:
    """Membership and length as a Python set's, across merges of the buffer into the sorted
    array, for keys that differ only in trailing NUL bytes too (NumPy's ``S`` dtype drops
    those when it compares)."""
    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, size, dtype=np.uint8)) for _ in range(300)]
    keys += [b"\0" * size, b"a" + b"\0" * (size - 1), b"a" + b"\0" * (size - 2) + b"\1"]
    digests, reference = DigestSet(size, buffer=7), set()
    for key in keys + keys[:50]:  # the repeats are not added twice
        assert (key in digests) == (key in reference)
        assert digests.add(key) == (key not in reference)  # True when new
        reference.add(key)
    assert len(digests) == len(reference) == 303
    for _ in range(200):
        key = bytes(rng.integers(0, 256, size, dtype=np.uint8))
        assert (key in digests) == (key in reference)
    assert b"a" + b"\0" * (size - 2) + b"\2" not in digests
    with pytest.raises(ValueError, match=f"{size} bytes, not 3"):
        digests.add(b"abc")


def test_curate_keeps_no_fingerprint_in_its_records(tmp_path, monkeypatch) -> None:
    """The records a run keeps (in its record store) carry no thumbnail, and the work files
    are gone when the dataset is swapped in; the summary reports the candidate counts, and
    a re-run's alignment scores come from the cache."""
    from restorelab.curation import pipeline
    from restorelab.curation.schema import CurationConfig

    src = tmp_path / "src"
    src.mkdir()
    astro = data.astronaut()
    for name, image in {
        "a.png": astro,
        "b.png": data.coffee(),
        "a_small.jpg": cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA),
    }.items():
        cv2.imwrite(str(src / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    added = []
    real_add = RecordStore.add

    def spy(self, record):
        added.append(record)
        return real_add(self, record)

    monkeypatch.setattr(RecordStore, "add", spy)
    out = tmp_path / "out"
    config = CurationConfig(filters={"min_side": 64}, target=None)
    pipeline.curate([src], out, config, progress=False)
    assert added and all("fingerprint" not in r.analysis for r in added)
    assert not (out / pipeline.WORK_DIR).exists()
    summary = json.loads((out / "curation.json").read_text())
    near = summary["near_duplicates"]
    assert near["images"] == 3 and near["groups"] == 1 and near["candidates"] >= 1
    assert near["aligned"] >= 1 and near["scores_reused"] == 0
    assert Path(out / "metadata.jsonl").read_text().count("\n") == 2
    # a re-run takes the alignment scores from the cache: the same groups, nothing aligned
    pipeline.curate([src], out, config, progress=False)
    again = json.loads((out / "curation.json").read_text())["near_duplicates"]
    assert again["scores_reused"] == again["aligned"] == near["aligned"]
    assert again["groups"] == 1
