from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorelab.imageio import (
    ImageReadError,
    check_image,
    decode_image,
    decode_image_info,
    iter_image_files,
    pixel_hash,
    read_image,
    thumbnail,
    write_image,
)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_png_roundtrip_is_exact(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = write_image(tmp_path / "a.png", astronaut)
    assert np.array_equal(read_image(path), astronaut)


def test_exif_orientation_is_applied(astronaut: np.ndarray) -> None:
    image = Image.fromarray(astronaut[:, :100])  # 128 high, 100 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    decoded = decode_image_info(_encode(image, "JPEG", exif=exif, quality=95))
    assert decoded.orientation == 6
    assert decoded.pixels.shape == (100, 128, 3)
    assert not decoded.is_plain_rgb


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_every_mode_becomes_rgb_uint8(mode: str, astronaut: np.ndarray) -> None:
    image = Image.fromarray(astronaut)
    if mode == "I;16":
        gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(gray)
        fmt = "PNG"
    else:
        image = image.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    pixels = decode_image(_encode(image, fmt))
    assert pixels.dtype == np.uint8
    assert pixels.shape == (128, 128, 3)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    pixels = decode_image(_encode(Image.fromarray(ramp), "PNG"))
    assert pixels[..., 0].max() == 255
    assert pixels[..., 0].min() == 0


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    pixels = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (pixels == 255).all()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty file"),
        (b"not an image at all", "not a recognised image format"),
    ],
)
def test_bad_bytes_raise_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ImageReadError, match=reason):
        decode_image(payload, source="x.jpg")


def test_truncated_file_names_the_file(tmp_path: Path, astronaut: np.ndarray) -> None:
    data = _encode(Image.fromarray(astronaut), "JPEG", quality=90)
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"broken\.jpg: cannot decode"):
        read_image(path)


def test_check_image_messages() -> None:
    with pytest.raises(ValueError, match="grayscale"):
        check_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="RGBA"):
        check_image(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
        check_image(np.zeros((4, 4, 3), np.float32))


def test_pixel_hash_ignores_file_format(tmp_path: Path, astronaut: np.ndarray) -> None:
    write_image(tmp_path / "a.png", astronaut)
    write_image(tmp_path / "a.bmp", astronaut)
    hashes = {pixel_hash(read_image(p)) for p in iter_image_files(tmp_path)}
    assert len(hashes) == 1


def test_iter_image_files_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ["b.png", "a/c.JPG", ".hidden/x.png", "notes.txt", "a/.d.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["b.png", "a/c.JPG"]


def test_thumbnail_keeps_aspect(astronaut: np.ndarray) -> None:
    thumb = thumbnail(astronaut[:, :64], max_side=32)
    assert thumb.shape == (32, 16, 3)


def test_pixel_hash_tells_shape_and_dtype_apart(astronaut: np.ndarray) -> None:
    flat = np.ascontiguousarray(astronaut).reshape(-1)
    assert pixel_hash(astronaut) == pixel_hash(astronaut.copy())
    assert pixel_hash(astronaut) != pixel_hash(flat.reshape(64, 256, 3))
    assert pixel_hash(astronaut) != pixel_hash(astronaut.view(np.int8))
    assert pixel_hash(astronaut[:, ::-1]) == pixel_hash(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(pixel_hash(astronaut)) == 32
