"""Issue 14: the curation's fast decoders give exactly the reference (Pillow) pixels for every
PNG form they take, the analysis starts at once and schedules large images first without
changing any result, and the export's PNGs are written from the analysis's own decode."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from restorelab.curation import CurationConfig, curate, pipeline
from restorelab.curation.sources import SourceItem
from restorelab.imageio import ImageReadError, decode_image_info

SMALL = {"min_side": 20, "reject_grayscale": False}


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _raw_png(
    rows: list[bytes], width: int, height: int, depth: int, colour: int, extra: bytes = b""
) -> bytes:
    """A PNG written by hand (forms Pillow does not write: 2/4-bit grey, 16-bit grey+alpha,
    ancillary chunks ``extra`` such as gAMA or sBIT before the pixels)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def _packed_grey(values: np.ndarray, depth: int) -> list[bytes]:
    per_byte = 8 // depth
    rows = []
    for row in values:
        row = np.concatenate([row, np.zeros((-len(row)) % per_byte, row.dtype)])
        groups = row.reshape(-1, per_byte)
        shifts = depth * np.arange(per_byte - 1, -1, -1)
        rows.append((groups << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


def _png_forms() -> dict[str, bytes]:
    import cv2

    photo = data.coffee()[:61, :83]
    height, width = photo.shape[:2]
    rng = np.random.default_rng(0)
    alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
    alpha[:4], alpha[4:8] = 0, 255
    rgb = Image.fromarray(photo)
    grey16 = np.asarray(rgb.convert("L"), np.uint16) * 257
    la16 = rng.integers(0, 65536, (height, width, 2)).astype(">u2")
    return {
        "RGB": _png(rgb),
        "L": _png(rgb.convert("L")),
        "1": _png(rgb.convert("1")),
        "P": _png(rgb.convert("P")),
        "P 4-bit": _png(rgb.quantize(16), bits=4),
        "P 2-bit": _png(rgb.quantize(4), bits=2),
        "P with a transparent entry": _png(rgb.quantize(100), transparency=7),
        "RGBA, partial alpha": _png(Image.fromarray(np.dstack([photo, alpha]), "RGBA")),
        "RGBA, opaque": _png(rgb.convert("RGBA")),
        "LA": _png(Image.fromarray(np.dstack([photo[..., 1], alpha]), "LA")),
        "16-bit grey": _png(Image.fromarray(grey16)),
        "16-bit grey, values <= 255": _png(Image.fromarray(photo[..., 0].astype(np.uint16))),
        "16-bit grey, random": _png(
            Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.uint16))
        ),
        "16-bit RGB": cv2.imencode(
            ".png", rng.integers(0, 65536, (height, width, 3)).astype(np.uint16)
        )[1].tobytes(),
        "16-bit RGBA": cv2.imencode(
            ".png", rng.integers(0, 65536, (height, width, 4)).astype(np.uint16)
        )[1].tobytes(),
        "16-bit LA": _raw_png([row.tobytes() for row in la16], width, height, 16, 4),
        "2-bit grey": _raw_png(
            _packed_grey(rng.integers(0, 4, (height, width)), 2), width, height, 2, 0
        ),
        "RGB with gAMA, sBIT and cHRM chunks": _raw_png(
            [row.tobytes() for row in photo],
            width,
            height,
            8,
            2,
            _chunk(b"gAMA", struct.pack(">I", 45455))
            + _chunk(b"sBIT", bytes([5, 6, 5]))
            + _chunk(b"cHRM", struct.pack(">8I", *[31270, 32900, 64000, 33000] * 2)),
        ),
        "4-bit grey": _raw_png(
            _packed_grey(rng.integers(0, 16, (height, width)), 4), width, height, 4, 0
        ),
    }


@pytest.mark.parametrize("form", list(_png_forms()))
def test_png_forms_decode_through_opencv_with_pillows_pixels(form: str) -> None:
    """Every PNG form OpenCV takes gives exactly the reference decoder's pixels (alpha
    composited on white, 16-bit grey scaled, palettes expanded), mode and format."""
    payload = _png_forms()[form]
    fast, reference = pipeline._decode_png(payload, 10**9), decode_image_info(payload)
    assert fast is not None, form
    assert fast.pixels.flags.c_contiguous and fast.pixels.dtype == np.uint8
    assert np.array_equal(fast.pixels, reference.pixels), form
    assert (fast.mode, fast.format, fast.orientation) == (
        reference.mode,
        reference.format,
        reference.orientation,
    )


def test_png_forms_opencv_would_read_differently_are_left_to_pillow() -> None:
    """Colour-key transparency (grey, RGB), an EXIF chunk, animation, too many pixels and
    other formats return None; :func:`pipeline.decode` still gives the reference pixels."""
    photo = Image.fromarray(data.coffee()[:40, :50])
    exif = Image.Exif()
    exif[0x0112] = 6
    payloads = [
        _png(photo.convert("L"), transparency=0),
        _png(photo, transparency=(1, 2, 3)),
        _png(photo, exif=exif.tobytes()),
        _png(
            photo, save_all=True, append_images=[photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
        ),
    ]
    for payload in payloads:
        assert pipeline._decode_png(payload, 10**9) is None
        reference = decode_image_info(payload)
        decoded = pipeline.decode(payload, "x")
        assert np.array_equal(decoded.pixels, reference.pixels)
        assert (decoded.mode, decoded.orientation) == (reference.mode, reference.orientation)
    assert pipeline._decode_png(_png(photo), 40 * 50 - 1) is None
    assert pipeline._decode_png(b"GIF89a" + bytes(40), 10**9) is None
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        pipeline.decode(b"\x89PNG\r\n\x1a\n" + bytes(40), "broken.png")


def test_alpha_on_white_matches_pillow_for_every_value_and_alpha() -> None:
    """The composite table equals Pillow's alpha_composite on white for all 65,536 pairs."""
    channel = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    alpha = channel.T.copy()
    rgba = Image.fromarray(np.dstack([channel, channel, channel, alpha]), "RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    reference = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    bgra = np.dstack([channel, channel, channel, alpha])
    assert np.array_equal(pipeline._composite_on_white(bgra), reference)


def test_16_bit_grey_scaling_matches_the_reference_for_every_value() -> None:
    values = np.arange(65536, dtype=np.float64)
    reference = np.clip(np.round(values / 65535.0 * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(pipeline._GREY16_TO_8, reference)


def _items(sizes: list[int], folder: Path) -> list[SourceItem]:
    """Image files of about ``sizes`` bytes (noise PNGs)."""
    rng = np.random.default_rng(1)
    items = []
    for k, size in enumerate(sizes):
        side = max(8, int((size / 3) ** 0.5))
        path = folder / f"{k:02d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        items.append(SourceItem(source=str(path), path=path))
    return items


def test_analysis_starts_at_once_and_takes_the_largest_listed_input_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first image is analysed before the rest are listed (no serial pre-pass); a large
    image late in the input starts before smaller ones listed ahead of it; records still
    come out in input order with their own analysis."""
    from restorelab.curation.cache import AnalysisCache

    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    sizes = [3000] * 23 + [60000] + [3000] * 3
    items = _items(sizes, tmp_path)
    real = pipeline.analyse

    def spy(data_: bytes, source: str, *args, **kwargs) -> dict:
        with lock:
            log.append(("start", int(Path(source).stem)))
        time.sleep(0.02)  # as if the image were large: the threads stay busy
        return real(data_, source, *args, **kwargs)

    def listed():
        for k, item in enumerate(items):
            log.append(("list", k))
            yield item

    monkeypatch.setattr(pipeline, "analyse", spy)
    cache = AnalysisCache(tmp_path / "cache")
    config = CurationConfig(filters=SMALL, workers=2)
    records = list(pipeline._analysed(listed(), cache, config, progress=False))
    cache.close()
    assert [r.index for r in records] == list(range(len(items)))
    assert all(r.reason is None and r.analysis["signals"]["width"] > 0 for r in records)
    assert log.index(("start", 0)) < log.index(("list", 2))
    starts = [k for kind, k in log if kind == "start"]
    assert sorted(starts) == list(range(len(items)))
    # the large one (input 23) starts before inputs listed ahead of it
    assert starts.index(23) < 23
    assert starts.index(23) < starts.index(20)


def test_curated_output_is_the_same_for_one_and_two_workers_and_png_ahead(
    tmp_path: Path,
) -> None:
    """Scheduling and PNGs written during the analysis change no byte of the dataset: one
    thread, two threads and a run with a target (no PNG ahead) write the same
    ``metadata.jsonl`` and images; each exported PNG is the reference encoding of the
    reference decode."""
    src = tmp_path / "src"
    src.mkdir()
    photo = data.astronaut()[::2, ::2]
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    Image.fromarray(np.dstack([photo, alpha]), "RGBA").save(src / "a_rgba.png")
    Image.fromarray(np.asarray(Image.fromarray(data.coffee()).convert("L"), np.uint16) * 257).save(
        src / "b_grey16.png"
    )
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(data.chelsea()).save(src / "c_rotated.jpg", quality=92, exif=exif)
    Image.fromarray(data.rocket()).convert("CMYK").save(src / "d_cmyk.jpg", quality=92)
    Image.fromarray(data.stereo_motorcycle()[0][::2, ::2]).save(src / "e_plain.jpg", quality=92)
    outs = {}
    for name, config in {
        "one": CurationConfig(filters=SMALL, target=None, workers=1),
        "two": CurationConfig(filters=SMALL, target=None, workers=2),
        "target": CurationConfig(filters=SMALL, target=5, workers=2),
    }.items():
        out = tmp_path / name
        curate([src], out, config, progress=False)
        outs[name] = out
    metadata = {name: (out / "metadata.jsonl").read_bytes() for name, out in outs.items()}
    assert metadata["one"] == metadata["two"]
    import json

    rows = [json.loads(line) for line in metadata["two"].decode().splitlines()]
    assert len(rows) == 5
    for row in rows:
        images = {name: (out / row["file_name"]).read_bytes() for name, out in outs.items()}
        assert images["one"] == images["two"] == images["target"]
        source = Path(row["source"])
        if (row["file_name"].endswith(".png") and source.suffix != ".png") or row["mode"] != "RGB":
            expected = pipeline.encode_png(decode_image_info(source.read_bytes()).pixels)
            assert images["two"] == expected, row["source"]
    target_rows = [json.loads(line) for line in metadata["target"].decode().splitlines()]
    assert [r["file_name"] for r in target_rows] == [r["file_name"] for r in rows]


def _counted(count: int) -> Future:
    future: Future = Future()
    future.set_result(count)
    return future


def test_pngs_are_written_during_the_analysis_only_when_most_images_are_kept(
    tmp_path: Path,
) -> None:
    """Without a target the export PNG of an image that passes the filters is in the cache
    when the analysis ends; with a target far below the inputs (counted before or beside
    the analysis), or while the count is unknown, none is written early."""
    from restorelab.curation.cache import AnalysisCache

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(data.astronaut()[::2, ::2]).convert("RGBA").save(src / "rgba.png")
    items = [SourceItem(source=str(src / "rgba.png"), path=src / "rgba.png")]
    for config, total, expected in (
        (CurationConfig(filters=SMALL, target=None), None, True),
        (CurationConfig(filters=SMALL, target=1), 1, True),
        (CurationConfig(filters=SMALL, target=1), 10, False),
        (CurationConfig(filters={"min_side": 10_000}, target=None), None, False),
        (CurationConfig(filters=SMALL, target=1), _counted(1), True),
        (CurationConfig(filters=SMALL, target=1), _counted(10), False),
        (CurationConfig(filters=SMALL, target=1), Future(), False),  # not counted yet
    ):
        cache = AnalysisCache(tmp_path / f"cache-{id(total)}-{expected}")
        ahead = pipeline._png_while_analysing(cache, config, total)
        (record,) = pipeline._analysed(items, cache, config, False, total, ahead)
        written = cache.export_path(record.analysis["pixel_hash"])
        assert written.is_file() == expected
        if expected:
            pixels = decode_image_info(src / "rgba.png").pixels
            assert written.read_bytes() == pipeline.encode_png(pixels)
        cache.close()


def test_largest_first_order_with_bounded_wait() -> None:
    """The largest waiting input comes first; one that waited while ``patience`` newer
    inputs were listed comes before any larger one; every input comes out once."""
    queue = pipeline._LargestFirst(patience=4)
    for index, size in enumerate([5, 1, 9, 3]):
        queue.add(index, size, index)
    assert [queue.pop(), queue.pop()] == [2, 0]
    queue.add(4, 2, 4)
    queue.add(5, 50, 5, in_memory=True)
    assert queue.memory_bytes == 50
    assert queue.pop() == 1  # listed at 1, newest is 5: it has waited long enough
    assert [queue.pop(), queue.pop(), queue.pop()] == [5, 3, 4]
    assert len(queue) == 0 and queue.memory_bytes == 0


def test_largest_first_holds_nothing_of_a_started_input() -> None:
    """Streaming many inputs through the queue (listing ahead, taking the largest or the
    oldest) leaves no started entry alive: before, an entry taken in listing order stayed
    in the size heap, and a 100,000-image run's memory grew with the pool."""
    import gc
    import weakref

    class Entry:
        pass

    rng = np.random.default_rng(1)
    queue = pipeline._LargestFirst(patience=16)
    alive: list[weakref.ref] = []
    started = 0
    for index in range(5000):
        entry = Entry()
        alive.append(weakref.ref(entry))
        queue.add(index, int(rng.integers(1, 10**6)), entry)
        del entry
        if len(queue) > 8:
            queue.pop()
            started += 1
    gc.collect()
    assert sum(ref() is not None for ref in alive) == len(queue) == 5000 - started
    while len(queue):
        queue.pop()
    assert all(ref() is None for ref in alive)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (300, 1), (257, 131), (129, 64)])
def test_exported_png_is_lossless_and_the_same_with_threads(shape: tuple[int, int]) -> None:
    """The export's PNG decodes to the same pixels in Pillow and OpenCV, whatever the size
    against the strip height, and has the same bytes when its strips are compressed on
    threads."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    pixels[: shape[0] // 2] //= 7  # some runs of small differences too
    encoded = pipeline.encode_png(pixels)
    with ThreadPoolExecutor(3) as pool:
        assert pipeline.encode_png(pixels, pool) == encoded
    with Image.open(io.BytesIO(encoded)) as image:
        assert image.mode == "RGB" and not image.info.get("transparency")
        assert np.array_equal(np.asarray(image), pixels)
    opened = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR_RGB)
    assert np.array_equal(opened, pixels)
