"""Caption training photos with a local image-to-text model, with an on-disk cache.

:class:`Captioner` wraps a Hugging Face ``transformers`` model and processor loaded from a local
folder (nothing is ever downloaded). How the prompt reaches the model depends on what the
processor offers, never on the model's name:

``"chat"`` — the processor has a chat template (LLaVA, LLaVA-NeXT, Qwen2-VL, Idefics, ...)
    One user turn ``[image, prompt]`` is rendered with ``apply_chat_template(...,
    add_generation_prompt=True)``; the answer is the text generated after the template. The
    tokenizer pads on the left so batched decoder-only generation stays exact.
``"prefix"`` — a prompt but no chat template (BLIP, BLIP-2, GIT, Florence-2)
    The prompt goes to the processor as the text input: BLIP and GIT continue it as the start
    of the caption (conditional captioning), BLIP-2 as its OPT/T5 text, Florence-2 reads it as
    its task (pass ``prompt="<MORE_DETAILED_CAPTION>"``). The echoed prompt is stripped.
    An instruction such as :data:`DEFAULT_PROMPT` makes a poor caption prefix for BLIP: use
    ``prompt=None`` or a prefix such as ``"a photograph of"`` there.
``"unconditional"`` — ``prompt`` is None or empty
    Only the image goes to the processor (BLIP, GIT, ``vision-encoder-decoder`` captioners).

Generation is greedy (``do_sample=False``, ``num_beams=1``) under ``torch.inference_mode``, so
the same images, model and settings always give the same captions on one machine.

:class:`CaptionCache` stores captions in SQLite keyed by (pixel SHA-256, model identity,
prompt), so a re-run captions only new images; :func:`caption_problems` flags captions that
are empty, too short or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restorelab.imageio import check_image, pixel_hash
from restorelab.progress import tqdm
from restorelab.weights import MissingWeightsError

#: SUPIR's captioning instruction (for chat models such as LLaVA).
DEFAULT_PROMPT = "Describe this image and its style in a very detailed manner."

#: How to get a captioning model onto a machine without network access.
HOW_TO_GET_CAPTIONER = (
    "on a machine with network access run `hf download Salesforce/blip-image-captioning-large "
    "--local-dir blip-large` (`huggingface-cli download ...` with older huggingface_hub; any "
    "image-to-text model works, e.g. llava-hf/llava-1.5-7b-hf), copy the folder here and pass "
    "its path to Captioner.from_pretrained"
)

#: Files of which a model folder needs at least one, by role.
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")

#: Files up to this size enter the folder fingerprint whole; larger ones are sampled.
_FINGERPRINT_WHOLE = 4 << 20
#: Samples (count, bytes each) read from a large file for the folder fingerprint.
_FINGERPRINT_SAMPLES = (64, 64 << 10)


def require_model_folder(folder: Path, *, what: str, how_to_get: str) -> None:
    """Raise :class:`MissingWeightsError` unless ``folder`` holds config, weights and processor.

    ``what`` names the model in the message ("captioning model"); ``how_to_get`` is the recipe.
    """
    if not folder.is_dir():
        raise MissingWeightsError(f"{what} folder {folder} not found. To get one: {how_to_get}.")
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(
            f"{folder / 'config.json'} not found: {folder} is not a transformers model folder. "
            f"To get one: {how_to_get}."
        )
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise MissingWeightsError(
            f"no model weights in {folder} (looked for {', '.join(_WEIGHT_FILES)}). "
            f"To get them: {how_to_get}."
        )
    if not any((folder / name).is_file() for name in _PROCESSOR_FILES):
        raise MissingWeightsError(
            f"no processor in {folder} (looked for {' or '.join(_PROCESSOR_FILES)}). "
            f"To get it: {how_to_get}."
        )


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A content fingerprint of a model folder (hex SHA-256, 16 characters).

    Files directly in ``folder`` are hashed in name order: files up to 4 MiB whole, larger ones
    (weights) by size and 64 evenly spaced 64 KiB samples. A copied or moved folder keeps its
    fingerprint; retrained weights change it. Reads at most ~4 MiB per large file.
    """
    digest = hashlib.sha256()
    count, chunk = _FINGERPRINT_SAMPLES
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= _FINGERPRINT_WHOLE:
                digest.update(handle.read())
                continue
            for k in range(count):
                handle.seek((size - chunk) * k // (count - 1))
                digest.update(handle.read(chunk))
    return digest.hexdigest()[:16]


def resolve_dtype(dtype: Any) -> Any:
    """A ``torch.dtype`` from a dtype, its name (``"bfloat16"``) or None (= float32)."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown torch dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        return resolved
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, a string or None, got {dtype!r}")
    return dtype


def _load_model(folder: Path, dtype: Any) -> Any:
    """The image-to-text model in ``folder``, from the first auto class that covers its config."""
    import transformers
    from packaging.version import Version

    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    # transformers 4.56 renamed ``torch_dtype`` to ``dtype``.
    dtype_key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    kwargs = {"local_files_only": True, dtype_key: dtype}
    tried = []
    for name in ("AutoModelForImageTextToText", "AutoModelForVision2Seq"):
        auto_cls = getattr(transformers, name, None)
        mapping = getattr(auto_cls, "_model_mapping", None)
        if auto_cls is None or mapping is None:
            continue
        tried.append(name)
        if type(config) in mapping:
            return auto_cls.from_pretrained(folder, **kwargs)
    if config.model_type == "blip":
        return transformers.BlipForConditionalGeneration.from_pretrained(folder, **kwargs)
    tried.append("BlipForConditionalGeneration")
    raise ValueError(
        f"{folder}: model type {config.model_type!r} is not an image-to-text model that "
        f"transformers {transformers.__version__} can load (tried {', '.join(tried)})"
    )


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token id sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def strip_prompt_echo(text: str, prompt: str | None) -> str:
    """``text`` without a leading copy of ``prompt`` (case and spacing ignored), stripped.

    Examples
    --------
    >>> strip_prompt_echo("A photograph of  a red boat ", "a photograph of")
    'a red boat'
    >>> strip_prompt_echo("a red boat", "a photograph of")
    'a red boat'
    """
    text = " ".join(text.split())
    if prompt and _normalise(prompt):
        want = _normalise(prompt)
        if text.casefold().startswith(want):
            text = text[len(want) :]
    return text.strip()


class CaptionCache:
    """Captions on disk (SQLite), keyed by (image SHA-256, model identity, prompt).

    Parameters
    ----------
    path : path
        The database file; created with its folder when absent.

    Notes
    -----
    The image key is :func:`restorelab.imageio.pixel_hash` of the decoded pixels, so the same
    picture in another file format hits the cache. The prompt ``None`` is stored as ``""``.
    Each :meth:`put_many` is one transaction. Use one cache object per thread.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS captions (image_sha256 TEXT NOT NULL, model TEXT NOT NULL,"
            " prompt TEXT NOT NULL, caption TEXT NOT NULL, created REAL NOT NULL,"
            " PRIMARY KEY (image_sha256, model, prompt))"
        )
        self._db.commit()

    def get(self, image_sha256: str, model: str, prompt: str | None) -> str | None:
        """The cached caption, or None."""
        return self.get_many([image_sha256], model, prompt).get(image_sha256)

    def get_many(
        self, image_sha256s: Iterable[str], model: str, prompt: str | None
    ) -> dict[str, str]:
        """Cached captions of the images that have one: image SHA-256 → caption."""
        keys = list(dict.fromkeys(image_sha256s))
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[start : start + 500]
            rows = self._db.execute(
                "SELECT image_sha256, caption FROM captions WHERE model = ? AND prompt = ?"
                f" AND image_sha256 IN ({', '.join('?' * len(part))})",
                (model, prompt or "", *part),
            )
            found.update(rows)
        return found

    def put(self, image_sha256: str, model: str, prompt: str | None, caption: str) -> None:
        """Store (or replace) one caption."""
        self.put_many({image_sha256: caption}, model, prompt)

    def put_many(self, captions: dict[str, str], model: str, prompt: str | None) -> None:
        """Store (or replace) captions given as image SHA-256 → caption, in one transaction."""
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO captions VALUES (?, ?, ?, ?, ?)",
                [(key, model, prompt or "", text, now) for key, text in captions.items()],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> CaptionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Captioner:
    """Batched, deterministic image captioning with a local ``transformers`` model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An image-to-text model with ``generate`` (e.g. ``BlipForConditionalGeneration``,
        ``LlavaForConditionalGeneration``), already on ``device``.
    processor : transformers.ProcessorMixin
        Its processor (image processor + tokenizer).
    prompt : str or None, keyword-only
        The instruction or caption prefix; None or ``""`` for unconditional captioning. See
        the module docstring for how each kind of processor receives it (:attr:`mode`).
    max_new_tokens : int, keyword-only
        Most tokens generated per caption (77, the CLIP text encoders' context length; the
        captioner's tokenizer counts differently, so this is a rough cap).
    batch_size : int, keyword-only
        Images per ``generate`` call.
    identity : str, keyword-only
        Names the model in :class:`CaptionCache` keys; :meth:`from_pretrained` sets it to the
        model type and :func:`folder_fingerprint`. Generation settings are appended.
    generate_kwargs : dict, optional, keyword-only
        Extra ``generate`` arguments (they override the greedy defaults and enter the identity).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        prompt: str | None = DEFAULT_PROMPT,
        max_new_tokens: int = 77,
        batch_size: int = 8,
        identity: str | None = None,
        generate_kwargs: dict | None = None,
    ) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model.eval()
        self.processor = processor
        self.prompt = prompt or None
        self.batch_size = batch_size
        self.generate_kwargs = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "num_beams": 1,
            **(generate_kwargs or {}),
        }
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if self.prompt is None:
            self.mode = "unconditional"
        elif getattr(processor, "chat_template", None):
            self.mode = "chat"
        else:
            self.mode = "prefix"
        tokenizer = getattr(processor, "tokenizer", None)
        if self.mode == "chat" and not self.is_encoder_decoder and tokenizer is not None:
            tokenizer.padding_side = "left"
        base = identity or f"{model.config.model_type}@{model.config.name_or_path or 'unsaved'}"
        settings = json.dumps(self.generate_kwargs, sort_keys=True, default=str)
        self.identity = f"{base}|{self.mode}|dtype={model.dtype}|{settings}"

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        dtype: Any = None,
        prompt: str | None = DEFAULT_PROMPT,
        max_new_tokens: int = 77,
        batch_size: int = 8,
        generate_kwargs: dict | None = None,
    ) -> Captioner:
        """Load a captioner from a local model folder (``local_files_only=True``).

        Parameters
        ----------
        path : path
            A folder written by ``save_pretrained`` / ``hf download --local-dir``: config.json,
            weights and the processor's files.
        device : str, keyword-only
            Torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
        dtype : torch.dtype or str, optional, keyword-only
            Weights and pixel dtype; None = float32.
        prompt, max_new_tokens, batch_size, generate_kwargs
            See :class:`Captioner`.

        Raises
        ------
        MissingWeightsError
            The folder, its config, weights or processor files are missing; the message names
            what and says how to get a model.
        ValueError
            The folder's model type is not an image-to-text model.

        Notes
        -----
        The model class is ``AutoModelForImageTextToText`` when it covers the config, else
        ``AutoModelForVision2Seq`` (transformers < 5), else ``BlipForConditionalGeneration``
        for BLIP configs.
        """
        import transformers

        folder = Path(path).expanduser()
        require_model_folder(folder, what="captioning model", how_to_get=HOW_TO_GET_CAPTIONER)
        try:
            processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = _load_model(folder, resolve_dtype(dtype))
        except MissingWeightsError:
            raise
        except OSError as exc:
            raise MissingWeightsError(
                f"cannot load the captioning model in {folder}: {exc}. "
                f"To get a complete one: {HOW_TO_GET_CAPTIONER}."
            ) from exc
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None and len(tokenizer) <= len(set(tokenizer.all_special_ids)):
            # transformers 5 builds an empty tokenizer when the vocabulary files are missing.
            raise MissingWeightsError(
                f"no tokenizer vocabulary in {folder} (looked for tokenizer.json, vocab.txt, "
                f"vocab.json, tokenizer.model). To get a complete model: {HOW_TO_GET_CAPTIONER}."
            )
        model.to(device)
        identity = f"{model.config.model_type}@{folder_fingerprint(folder)}"
        return cls(
            model,
            processor,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            identity=identity,
            generate_kwargs=generate_kwargs,
        )

    def _inputs(self, images: list[Any]) -> Any:
        """Processor outputs for one batch of PIL images, per :attr:`mode`."""
        if self.mode == "unconditional":
            return self.processor(images=images, return_tensors="pt")
        if self.mode == "chat":
            messages = [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": self.prompt}],
                }
            ]
            text = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        else:
            text = self.prompt
        return self.processor(
            images=images, text=[text] * len(images), padding=True, return_tensors="pt"
        )

    def _generate(self, images: list[np.ndarray]) -> list[str]:
        """Captions of one batch (no cache)."""
        import torch
        from PIL import Image

        inputs = self._inputs([Image.fromarray(image) for image in images])
        device, dtype = self.model.device, self.model.dtype
        inputs = {
            key: value.to(device, dtype) if torch.is_floating_point(value) else value.to(device)
            for key, value in inputs.items()
            if isinstance(value, torch.Tensor)
        }
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self.generate_kwargs)
        sequences = getattr(output, "sequences", output).tolist()
        prompt_ids = inputs.get("input_ids")
        decode = (
            getattr(self.processor, "batch_decode", None) or self.processor.tokenizer.batch_decode
        )
        captions = []
        for row, ids in enumerate(sequences):
            if prompt_ids is not None and not self.is_encoder_decoder:
                # Decoder-only models (and BLIP's text decoder) return the prompt tokens first.
                ids = ids[_shared_prefix(ids, prompt_ids[row].tolist()) :]
            text = decode([ids], skip_special_tokens=True)[0]
            captions.append(strip_prompt_echo(text, self.prompt if self.mode == "prefix" else None))
        return captions

    def caption(
        self,
        images: Sequence[np.ndarray],
        *,
        cache: CaptionCache | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Caption images, ``batch_size`` at a time.

        Parameters
        ----------
        images : list of ndarray of uint8, shape (H, W, 3)
            RGB images (any sizes; the processor resizes them).
        cache : CaptionCache, optional, keyword-only
            Captions found there are returned without running the model; new ones are stored.
        progress : bool, keyword-only
            Show a tqdm progress bar over batches.

        Returns
        -------
        list of str
            One caption per image, in order, without the prompt echo or outer whitespace
            (possibly ``""``; see :func:`caption_problems`).
        """
        images = [check_image(image, name=f"images[{i}]") for i, image in enumerate(images)]
        captions: list[str | None] = [None] * len(images)
        keys: list[str] = []
        if cache is not None:
            keys = [pixel_hash(image) for image in images]
            cached = cache.get_many(keys, self.identity, self.prompt)
            captions = [cached.get(key) for key in keys]
        todo = [i for i, text in enumerate(captions) if text is None]
        starts = range(0, len(todo), self.batch_size)
        for start in tqdm(starts, desc="caption", unit="batch", disable=not progress):
            batch = todo[start : start + self.batch_size]
            new = self._generate([images[i] for i in batch])
            for i, text in zip(batch, new, strict=True):
                captions[i] = text
            if cache is not None:
                cache.put_many(
                    {keys[i]: text for i, text in zip(batch, new, strict=True)},
                    self.identity,
                    self.prompt,
                )
        return [text or "" for text in captions]

    def __call__(self, images: Sequence[np.ndarray], **kwargs: Any) -> list[str]:
        """Same as :meth:`caption`."""
        return self.caption(images, **kwargs)


def caption_problems(captions: Sequence[str], *, min_words: int = 5) -> list[str | None]:
    """What is wrong with each caption, or None when nothing is.

    Parameters
    ----------
    captions : list of str
        Captions, in corpus order.
    min_words : int, keyword-only
        Fewest whitespace-separated words a caption needs.

    Returns
    -------
    list of (str or None)
        Per caption, the first that applies of ``"empty caption"``, ``"caption too short (N
        words < min_words)"`` and ``"duplicate caption (same text as #i)"`` (``i`` = 0-based
        index of its first occurrence; text compared ignoring case and spacing), else None.

    Examples
    --------
    >>> caption_problems(["a red boat on a calm lake", " ", "boat", "A red boat on a calm lake"])
    ... # doctest: +NORMALIZE_WHITESPACE
    [None, 'empty caption', 'caption too short (1 words < 5)',
     'duplicate caption (same text as #0)']
    """
    problems: list[str | None] = []
    first_index: dict[str, int] = {}
    for index, caption in enumerate(captions):
        key = _normalise(caption or "")
        words = len(key.split())
        if not key:
            problems.append("empty caption")
        elif words < min_words:
            problems.append(f"caption too short ({words} words < {min_words})")
        elif key in first_index:
            problems.append(f"duplicate caption (same text as #{first_index[key]})")
        else:
            problems.append(None)
        first_index.setdefault(key, index)
    return problems
