"""Tests of restorelab.curation.selection: quality score, embeddings, k-center selection, faces."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from restorelab.curation.selection import (
    EMBED_DIM,
    QUALITY_WEIGHTS,
    ClipEmbedder,
    detect_faces,
    embed,
    embed_images,
    face_detector_backend,
    quality_parts,
    quality_score,
    select,
)
from restorelab.weights import MissingWeightsError

GOOD = {
    "sharpness": 2.2,
    "noise_sigma": 1.0,
    "jpeg_quality": 95,
    "megapixels": 4.0,
    "clipped_dark": 0.01,
    "clipped_bright": 0.01,
}

# ---------------------------------------------------------------------------------------------
# quality_score
# ---------------------------------------------------------------------------------------------


def test_quality_weights_add_up_to_one() -> None:
    assert math.isclose(sum(QUALITY_WEIGHTS.values()), 1.0)


def test_quality_score_range() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        signals = {
            "sharpness": rng.uniform(0, 3.5),
            "noise_sigma": rng.uniform(0, 30),
            "jpeg_quality": None if rng.random() < 0.3 else int(rng.integers(1, 101)),
            "megapixels": rng.uniform(0, 60),
            "clipped_dark": rng.uniform(0, 1),
            "clipped_bright": rng.uniform(0, 1),
        }
        assert 0.0 <= quality_score(signals) <= 1.0
    best = {"sharpness": 3, "noise_sigma": 0, "jpeg_quality": None, "megapixels": 50}
    assert quality_score({**best, "clipped_dark": 0, "clipped_bright": 0}) == 1.0
    worst = {"sharpness": 0, "noise_sigma": 1e9, "jpeg_quality": 1, "megapixels": 0.01}
    assert quality_score({**worst, "clipped_dark": 1, "clipped_bright": 1}) < 1e-12


@pytest.mark.parametrize(
    ("key", "values", "direction"),
    [
        ("sharpness", [0.0, 1.0, 1.3, 1.6, 2.0, 2.5, 2.6, 3.0], +1),
        ("noise_sigma", [0.0, 0.5, 1.0, 3.0, 6.0, 20.0], -1),
        ("jpeg_quality", [1, 40, 60, 75, 90, 95, 100], +1),
        ("megapixels", [0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 24.0], +1),
        ("clipped_dark", [0.0, 0.01, 0.05, 0.1, 0.2, 0.5], -1),
        ("clipped_bright", [0.0, 0.01, 0.05, 0.1, 0.5], -1),
    ],
)
def test_quality_score_is_monotone(key: str, values: list[float], direction: int) -> None:
    scores = [quality_score({**GOOD, key: v}) for v in values]
    steps = np.diff(scores) * direction
    assert (steps >= 0).all(), scores
    assert steps.sum() > 0.01, f"{key} moves the score"


def test_quality_score_lossless_beats_any_jpeg() -> None:
    assert quality_score({**GOOD, "jpeg_quality": None}) > quality_score(
        {**GOOD, "jpeg_quality": 100}
    )


def test_quality_score_tolerates_missing_keys() -> None:
    assert quality_score({}) == 0.5
    assert quality_score({"width": 10, "format": "PNG"}) == 0.5
    only_sharp = quality_score({"sharpness": 2.6})
    assert only_sharp == 1.0
    assert quality_parts({"sharpness": float("nan"), "noise_sigma": None}) == {}
    assert quality_parts({"clipped_bright": 0.05}) == {"exposure": 0.5}
    # A missing jpeg_quality key is unknown (left out), None is lossless (best).
    assert "jpeg" not in quality_parts({"sharpness": 2.0})
    assert quality_parts({"jpeg_quality": None}) == {"jpeg": 1.0}


# ---------------------------------------------------------------------------------------------
# embed
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_photos() -> dict[str, np.ndarray]:
    return {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}


def test_embed_contract(full_photos: dict[str, np.ndarray]) -> None:
    vector = embed(full_photos["astronaut"])
    assert vector.shape == (EMBED_DIM,) == (272,)
    assert vector.dtype == np.float32
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-6)
    assert np.array_equal(vector, embed(full_photos["astronaut"].copy()))
    for flat in (np.zeros((10, 7, 3), np.uint8), np.full((5, 5, 3), 255, np.uint8)):
        flat_vector = embed(flat)
        assert np.isfinite(flat_vector).all()
        assert np.isclose(np.linalg.norm(flat_vector), 1.0, atol=1e-6)
    assert embed(np.zeros((1, 1, 3), np.uint8)).shape == (EMBED_DIM,)


def test_embed_images_stacks() -> None:
    images = [np.full((8, 8, 3), v, np.uint8) for v in (0, 128, 255)]
    stacked = embed_images(images)
    assert stacked.shape == (3, EMBED_DIM)
    assert np.array_equal(stacked[1], embed(images[1]))
    assert embed_images([]).shape == (0, EMBED_DIM)


def test_embed_near_copies_are_close(full_photos: dict[str, np.ndarray]) -> None:
    """Resized and blurred copies stay far closer to their photo than other photos are."""
    vectors = {name: embed(image) for name, image in full_photos.items()}
    names = list(vectors)
    between = min(np.linalg.norm(vectors[a] - vectors[b]) for a in names for b in names if a < b)
    assert between > 0.6
    for name, image in full_photos.items():
        h, w = image.shape[:2]
        half = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
        for copy in (half, blurred):
            assert np.linalg.norm(embed(copy) - vectors[name]) < 0.05


# ---------------------------------------------------------------------------------------------
# select
# ---------------------------------------------------------------------------------------------


def _clusters(
    k: int, per: int, dim: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``k`` well separated clusters of ``per`` near-identical points; labels and scores."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), per)
    points = centres[labels] + rng.normal(scale=1e-4, size=(k * per, dim))
    scores = rng.uniform(size=k * per)
    return points.astype(np.float32), labels, scores


def test_select_exact_n_and_deterministic() -> None:
    rng = np.random.default_rng(1)
    scores, embeddings = rng.uniform(size=50), rng.normal(size=(50, 8))
    picked = select(10, scores, embeddings)
    assert len(picked) == len(set(picked)) == 10
    assert all(isinstance(i, int) and 0 <= i < 50 for i in picked)
    assert select(10, scores, embeddings) == picked
    assert select(10, list(scores), embeddings.astype(np.float64)) == picked
    assert select(0, scores, embeddings) == []


def test_select_seeds_with_best_and_keeps_to_the_pool() -> None:
    rng = np.random.default_rng(2)
    scores, embeddings = rng.uniform(size=40), rng.normal(size=(40, 8))
    picked = select(8, scores, embeddings, quality_pool=1.5)
    ranked = sorted(range(40), key=lambda i: (-scores[i], i))
    assert picked[0] == ranked[0]
    assert set(picked) <= set(ranked[:12])
    assert sorted(select(8, scores, embeddings, quality_pool=1.0)) == sorted(ranked[:8])


def test_select_ties_by_quality_then_index() -> None:
    embeddings = np.zeros((4, 3))
    assert select(2, [0.5, 0.5, 0.9, 0.5], embeddings) == [2, 0]


def test_select_quality_first() -> None:
    """Of near-identical pairs the clearly worse twin never displaces the better one."""
    good, _, _ = _clusters(6, 1, seed=3)
    rng = np.random.default_rng(3)
    bad = good + rng.normal(scale=1e-3, size=good.shape).astype(np.float32)
    embeddings = np.concatenate([bad, good])  # worse twins first: lower indices
    scores = np.concatenate([np.full(6, 0.2), rng.uniform(0.8, 0.9, size=6)])
    for pool in (1.0, 1.5, 2.0):
        assert sorted(select(6, scores, embeddings, quality_pool=pool)) == list(range(6, 12))
    # Without the tie tolerance only the tight pool protects quality.
    assert sorted(select(6, scores, embeddings, quality_pool=1.0, tie_tolerance=0)) == list(
        range(6, 12)
    )


def test_select_quality_first_on_real_photos(full_photos: dict[str, np.ndarray]) -> None:
    """Each photo beats its own half-size and blurred copies, even with the whole pool open."""
    originals = [full_photos[name] for name in ("astronaut", "coffee", "chelsea")]
    copies = []
    for image in originals:
        h, w = image.shape[:2]
        copies.append(cv2.GaussianBlur(image, (0, 0), 1.5))
        copies.append(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    embeddings = embed_images(copies + originals)
    scores = np.array([0.5] * len(copies) + [0.9, 0.8, 0.7])
    picked = select(3, scores, embeddings, quality_pool=3.0)
    assert sorted(picked) == [6, 7, 8]


def test_select_diversity_one_per_cluster_first() -> None:
    embeddings, labels, scores = _clusters(5, 6, seed=4)
    for n in (5, 10, 15):
        picked = select(n, scores, embeddings, quality_pool=30 / n)
        first = [labels[i] for i in picked[:5]]
        assert sorted(first) == [0, 1, 2, 3, 4], picked
        # Within a cluster the best member comes first.
        for cluster in range(5):
            members = [i for i in picked if labels[i] == cluster]
            best = max(np.flatnonzero(labels == cluster), key=lambda i: scores[i])
            assert members[0] == best


def test_select_quotas() -> None:
    rng = np.random.default_rng(5)
    m = 40
    scores, embeddings = rng.uniform(0.5, 1.0, size=m), rng.normal(size=(m, 8))
    faces = [3, 11, 17, 25, 33]
    scores[faces] = rng.uniform(0.0, 0.1, size=len(faces))  # faces are the worst images
    categories = ["face" if i in faces else None for i in range(m)]
    assert not set(select(10, scores, embeddings)) & set(faces)

    picked = select(10, scores, embeddings, categories=categories, quotas={"face": 0.3})
    assert len(picked) == 10
    assert sum(i in faces for i in picked) == 3  # ceil(0.3 × 10)
    assert picked[0] == max(faces, key=lambda i: scores[i])  # quotas first, best seed
    picked = select(10, scores, embeddings, categories=categories, quotas={"face": 2})
    assert sum(i in faces for i in picked) == 2
    # A category with too few members gives all of them, the rest fills up to n.
    picked = select(10, scores, embeddings, categories=categories, quotas={"face": 8})
    assert len(picked) == 10 and set(faces) <= set(picked)


def test_select_multi_label_quotas_count_once_per_category() -> None:
    rng = np.random.default_rng(6)
    m = 30
    scores, embeddings = rng.uniform(size=m), rng.normal(size=(m, 4))
    categories: list = [None] * m
    for i in (0, 1, 2):
        categories[i] = {"face", "indoor"}
    for i in (3, 4, 5):
        categories[i] = "indoor"
    scores[:6] = 0.0
    picked = select(8, scores, embeddings, categories=categories, quotas={"face": 2, "indoor": 3})
    assert sum(1 for i in picked if "face" in (categories[i] or ())) >= 2
    indoor = sum(1 for i in picked if categories[i] and "indoor" in categories[i])
    assert indoor == 3, "the two face picks already count as indoor"


def test_select_shortfall_returns_all() -> None:
    rng = np.random.default_rng(7)
    scores, embeddings = rng.uniform(size=4), rng.normal(size=(4, 3))
    assert sorted(select(10, scores, embeddings)) == [0, 1, 2, 3]
    categories = ["face", None, None, "face"]
    picked = select(10, scores, embeddings, categories=categories, quotas={"face": 0.5})
    assert sorted(picked) == [0, 1, 2, 3]
    assert select(3, [], np.zeros((0, 3))) == []


def test_select_rejects_bad_input() -> None:
    scores, embeddings = np.ones(3), np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"embeddings must have shape \(3, D\)"):
        select(2, scores, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="quality_pool must be >= 1"):
        select(2, scores, embeddings, quality_pool=0.5)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        select(-1, scores, embeddings)
    with pytest.raises(ValueError, match="quotas need categories"):
        select(2, scores, embeddings, quotas={"face": 1})
    with pytest.raises(ValueError, match="add up to more than n"):
        select(2, scores, embeddings, categories=["a", "b", "a"], quotas={"a": 2, "b": 1})
    with pytest.raises(ValueError, match="categories has 2 entries for 3 images"):
        select(2, scores, embeddings, categories=["a", "b"], quotas={"a": 1})
    with pytest.raises(ValueError, match="scores must be finite"):
        select(2, [1.0, float("nan"), 0.0], embeddings)
    with pytest.raises(TypeError, match="quota for 'a'"):
        select(2, scores, embeddings, categories=["a"] * 3, quotas={"a": "half"})


# ---------------------------------------------------------------------------------------------
# faces
# ---------------------------------------------------------------------------------------------


def test_detect_faces_astronaut_and_coffee() -> None:
    assert detect_faces(data.astronaut()) >= 1
    assert detect_faces(data.coffee()) == 0


def test_detect_faces_skimage_backend(full_photos: dict[str, np.ndarray]) -> None:
    assert detect_faces(full_photos["astronaut"], backend="skimage") == 1
    for name in ("coffee", "chelsea", "rocket"):
        assert detect_faces(full_photos[name], backend="skimage") == 0, name
    assert detect_faces(np.stack([data.coins()] * 3, axis=-1), backend="skimage") == 0
    # Same answer from a larger copy: the detector works on a fixed-size grey copy.
    big = cv2.resize(full_photos["astronaut"], (1024, 1024), interpolation=cv2.INTER_CUBIC)
    assert detect_faces(big, backend="skimage") == 1
    assert detect_faces(np.zeros((12, 12, 3), np.uint8)) == 0


def test_detect_faces_opencv_backend() -> None:
    if face_detector_backend() != "opencv":
        with pytest.raises(RuntimeError, match="Haar"):
            detect_faces(data.coffee(), backend="opencv")
        pytest.skip("this OpenCV has no Haar cascades (OpenCV >= 5)")
    assert detect_faces(data.astronaut(), backend="opencv") == 1
    assert detect_faces(data.coffee(), backend="opencv") == 0


def test_detect_faces_bad_backend() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        detect_faces(data.coffee(), backend="dlib")


# ---------------------------------------------------------------------------------------------
# ClipEmbedder
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved CLIP with 2-layer 32-wide towers, 16-d projections and 32-px images."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers.pre_tokenizers import ByteLevel

    folder = tmp_path_factory.mktemp("tiny_clip")
    chars = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in chars + [c + "</w>" for c in chars]:
        vocab[token] = len(vocab)
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    processor = transformers.CLIPProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    tower = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    }
    config = transformers.CLIPConfig(
        text_config={**tower, "vocab_size": len(vocab), "max_position_embeddings": 16},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_clip_embedder(tiny_clip: Path, photos: dict[str, np.ndarray]) -> None:
    images = list(photos.values())
    embedder = ClipEmbedder.from_pretrained(tiny_clip, batch_size=2)
    vectors = embedder(images)
    assert embedder.dim == 16
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(embedder(images), vectors)
    one_by_one = np.concatenate([embedder([image]) for image in images])
    assert np.allclose(one_by_one, vectors, atol=1e-5)
    assert np.linalg.norm(vectors[0] - vectors[1]) > 1e-3
    assert embedder([]).shape == (0, 16)
    assert len(select(2, np.ones(3), vectors)) == 2


def test_clip_embedder_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="no-clip-here") as info:
        ClipEmbedder.from_pretrained(tmp_path / "no-clip-here")
    assert "hf download openai/clip-vit-base-patch32" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match=r"config\.json"):
        ClipEmbedder.from_pretrained(tmp_path / "empty")
