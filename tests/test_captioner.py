"""Tests of restorelab.curation.captioner on tiny random-weight models built offline.

A tiny BLIP (prefix / unconditional captioning) and a tiny LLaVA (chat template) are built from
configs with random weights, their processors from tokenizers written here (no hub files),
and saved under a temporary folder; the captioner then loads them like real checkpoints.
Random weights caption gibberish, so the tests check the contract, not the words.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from restorelab.curation.captioner import (  # noqa: E402
    DEFAULT_PROMPT,
    CaptionCache,
    Captioner,
    caption_problems,
    folder_fingerprint,
    strip_prompt_echo,
)
from restorelab.weights import MissingWeightsError  # noqa: E402

#: The tiny models' word vocabulary (besides special tokens).
WORDS = " ".join(
    [
        "a an the photo photograph of image with cat dog man woman red blue green sky tree",
        "house in on and describe this its style very detailed manner . user assistant :",
    ]
).split()


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved BLIP captioner: 2-layer 32-wide vision and text towers, 32-px images."""
    folder = tmp_path_factory.mktemp("tiny_blip")
    vocab_file = folder.parent / "blip_vocab.txt"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizer(str(vocab_file), do_lower_case=True)
    processor = transformers.BlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2}
    config = transformers.BlipConfig(
        text_config={
            **tower,
            "vocab_size": len(vocab),
            "num_attention_heads": 4,
            "max_position_embeddings": 128,
            "bos_token_id": 2,
            "sep_token_id": 3,
            "eos_token_id": 3,
            "pad_token_id": 0,
        },
        vision_config={**tower, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(0)
    transformers.BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved LLaVA with a chat template: tiny CLIP vision tower, tiny Llama, 32-px images."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny_llava")
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<image>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = (
        "{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
        "{% endfor %}{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
    )
    processor = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    config = transformers.LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
            "bos_token_id": 2,
            "eos_token_id": 3,
            "pad_token_id": 0,
        },
        image_token_id=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def blip(tiny_blip: Path) -> Captioner:
    return Captioner.from_pretrained(tiny_blip, prompt="a photo of", max_new_tokens=12)


@pytest.fixture
def three(photos: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [photos["astronaut"], photos["coffee"], photos["chelsea"]]


def test_blip_captions_are_strings_and_deterministic(
    blip: Captioner, three: list[np.ndarray]
) -> None:
    assert blip.mode == "prefix"
    first = blip.caption(three)
    assert len(first) == 3
    assert all(isinstance(text, str) for text in first)
    assert any(first), "random weights still generate some tokens"
    assert all(text == text.strip() for text in first)
    assert blip.caption(three) == first


def test_blip_batching_matches_one_by_one(tiny_blip: Path, three: list[np.ndarray]) -> None:
    batched = Captioner.from_pretrained(
        tiny_blip, prompt="a photo of", max_new_tokens=12, batch_size=2
    )
    single = Captioner.from_pretrained(
        tiny_blip, prompt="a photo of", max_new_tokens=12, batch_size=1
    )
    assert (
        batched.caption(three)
        == single.caption(three)
        == [single.caption([image])[0] for image in three]
    )


def test_blip_prefix_echo_is_stripped(
    blip: Captioner, three: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BLIP returns the prompt tokens first; the caption starts after them."""
    generate = blip.model.generate
    seen = {}

    def spy(**kwargs):
        out = generate(**kwargs)
        seen["full"] = blip.processor.batch_decode(out, skip_special_tokens=True)
        return out

    monkeypatch.setattr(blip.model, "generate", spy)
    captions = blip.caption(three[:1])
    assert seen["full"][0].startswith("a photo of")
    assert seen["full"][0] == f"a photo of {captions[0]}".strip()


def test_blip_unconditional(tiny_blip: Path, three: list[np.ndarray]) -> None:
    captioner = Captioner.from_pretrained(tiny_blip, prompt=None, max_new_tokens=8)
    assert captioner.mode == "unconditional"
    captions = captioner.caption(three)
    assert len(captions) == 3
    assert captions == captioner.caption(three)


def test_llava_chat_template(tiny_llava: Path, three: list[np.ndarray]) -> None:
    captioner = Captioner.from_pretrained(tiny_llava, max_new_tokens=6, batch_size=2)
    assert captioner.mode == "chat"
    assert captioner.processor.tokenizer.padding_side == "left"
    captions = captioner.caption(three)
    assert len(captions) == 3
    assert all(isinstance(text, str) for text in captions)
    # Only the answer comes back: never the template ("user : <image> describe ...").
    assert not any(text.startswith("user") for text in captions)
    assert captions == [captioner.caption([image])[0] for image in three]


def test_cache_skips_the_model(
    blip: Captioner,
    three: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_file = tmp_path / "cache" / "captions.sqlite"
    with CaptionCache(cache_file) as cache:
        first = blip.caption(three[:2], cache=cache)
        assert len(cache) == 2

    batches: list[int] = []
    generate = blip._generate

    def counting(images: list[np.ndarray]) -> list[str]:
        batches.append(len(images))
        return generate(images)

    monkeypatch.setattr(blip, "_generate", counting)
    with CaptionCache(cache_file) as cache:  # reopened: the captions are on disk
        again = blip.caption(three, cache=cache)
        assert batches == [1], "only the uncached third image reaches the model"
        assert again[:2] == first
        assert again == blip.caption(three)
        assert len(cache) == 3

        def forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError("the model ran although every caption was cached")

        monkeypatch.setattr(blip.model, "generate", forbidden)
        monkeypatch.setattr(blip, "_generate", forbidden)
        assert blip.caption(three, cache=cache) == again


def test_cache_keys_on_model_and_prompt(tmp_path: Path) -> None:
    with CaptionCache(tmp_path / "c.sqlite") as cache:
        cache.put("abc", "blip@1", "a photo of", "a cat")
        assert cache.get("abc", "blip@1", "a photo of") == "a cat"
        assert cache.get("abc", "blip@2", "a photo of") is None
        assert cache.get("abc", "blip@1", None) is None
        cache.put("abc", "blip@1", None, "unconditional")
        assert cache.get("abc", "blip@1", "") == "unconditional"
        cache.put("abc", "blip@1", "a photo of", "a dog")  # replaces
        assert cache.get_many(["abc", "zzz"], "blip@1", "a photo of") == {"abc": "a dog"}


def test_identity_follows_weights_and_settings(tiny_blip: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_blip, copy)
    assert folder_fingerprint(copy) == folder_fingerprint(tiny_blip)
    a = Captioner.from_pretrained(tiny_blip, prompt="a photo of", max_new_tokens=12)
    assert Captioner.from_pretrained(copy, prompt="a photo of", max_new_tokens=12).identity == (
        a.identity
    )
    assert Captioner.from_pretrained(tiny_blip, max_new_tokens=13).identity != a.identity
    (copy / "config.json").write_text(
        (copy / "config.json").read_text().replace('"blip"', '"blip" '), encoding="utf-8"
    )
    assert folder_fingerprint(copy) != folder_fingerprint(tiny_blip)


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(MissingWeightsError, match="no-such-model") as info:
        Captioner.from_pretrained(missing)
    assert "hf download" in str(info.value)


def test_missing_weights_and_processor(tiny_blip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_blip, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match=r"no model weights in .*broken"):
        Captioner.from_pretrained(broken)
    shutil.copy(tiny_blip / "model.safetensors", broken)
    (broken / "processor_config.json").unlink()
    with pytest.raises(MissingWeightsError, match="no processor"):
        Captioner.from_pretrained(broken)
    (broken / "config.json").unlink()
    with pytest.raises(MissingWeightsError, match=r"config\.json"):
        Captioner.from_pretrained(broken)


def test_missing_tokenizer_is_missing_weights(tiny_blip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_blip, broken)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (broken / name).unlink(missing_ok=True)
    with pytest.raises(MissingWeightsError, match=r"no tokenizer vocabulary in .*broken"):
        Captioner.from_pretrained(broken)


def test_bad_arguments(blip: Captioner) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Captioner(blip.model, blip.processor, batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        Captioner(blip.model, blip.processor, max_new_tokens=0)
    with pytest.raises(ValueError, match=r"images\[0\] must be uint8"):
        blip.caption([np.zeros((8, 8, 3), np.float32)])


def test_default_prompt_is_supirs() -> None:
    assert DEFAULT_PROMPT == "Describe this image and its style in a very detailed manner."


@pytest.mark.parametrize(
    ("text", "prompt", "expected"),
    [
        ("a photo of a red boat", "a photo of", "a red boat"),
        ("A Photo  of\ta red boat ", "a photo of", "a red boat"),
        ("a red boat", "a photo of", "a red boat"),
        ("  a red boat  ", None, "a red boat"),
        ("a photo of", "a photo of", ""),
    ],
)
def test_strip_prompt_echo(text: str, prompt: str | None, expected: str) -> None:
    assert strip_prompt_echo(text, prompt) == expected


def test_caption_problems() -> None:
    captions = [
        "a red boat on a calm lake",
        "",
        "   ",
        "a red boat",
        "A red boat on a  calm lake",
        "a green house under a blue sky",
        "a red boat",
    ]
    assert caption_problems(captions) == [
        None,
        "empty caption",
        "empty caption",
        "caption too short (3 words < 5)",
        "duplicate caption (same text as #0)",
        None,
        "caption too short (3 words < 5)",
    ]
    assert caption_problems(["a red boat"], min_words=3) == [None]
    assert caption_problems([]) == []
