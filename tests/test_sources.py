"""Every kind of curation source, built small from real photos, streams the right items.

Inputs are scikit-image's astronaut, coffee and chelsea photos scaled to a 64 px long side;
URL lists are served by a local ``http.server`` on 127.0.0.1 (no internet).
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data
from tests_support import resized

from restorelab.curation import SourceItem, count_sources, curate, iter_sources
from restorelab.curation.sources import FetchConfig
from restorelab.imageio import decode_image

NAMES = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    """The three photos, long side 64 px."""
    return {name: resized(getattr(data, name)(), 64) for name in NAMES}


def encode(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def assert_is(item: SourceItem, image: np.ndarray, *, exact: bool = True) -> None:
    """The item's bytes decode to ``image``: exactly for PNG; for JPEG (quality 95, 4:2:0
    chroma at 64 px) within 8 grey levels on average, where two different photos differ by
    far more than that."""
    pixels = decode_image(item.read_bytes(), source=item.source)
    assert pixels.shape == image.shape
    if exact:
        np.testing.assert_array_equal(pixels, image)
    else:
        assert np.abs(pixels.astype(int) - image.astype(int)).mean() < 8


# --------------------------------------------------------------------------- local files


@pytest.fixture
def folder(tmp_path: Path, small: dict[str, np.ndarray]) -> Path:
    root = tmp_path / "folder"
    (root / "animals").mkdir(parents=True)
    (root / "drinks" / "hot").mkdir(parents=True)
    Image.fromarray(small["astronaut"]).save(root / "astronaut.png")
    (root / "astronaut.txt").write_text("An astronaut.\n", encoding="utf-8")
    Image.fromarray(small["chelsea"]).save(root / "animals" / "chelsea.png")
    (root / "animals" / "chelsea.json").write_text(
        json.dumps({"caption": "A tabby cat.", "license": "CC0"}), encoding="utf-8"
    )
    Image.fromarray(small["coffee"]).save(root / "drinks" / "hot" / "coffee.jpg", quality=95)
    (root / "notes.md").write_text("not an image", encoding="utf-8")
    return root


def test_folder_is_recursive_with_categories_and_sidecar_captions(
    folder: Path, small: dict[str, np.ndarray]
) -> None:
    items = list(iter_sources([folder]))
    assert [i.source for i in items] == [
        str(folder / "astronaut.png"),
        str(folder / "animals" / "chelsea.png"),
        str(folder / "drinks" / "hot" / "coffee.jpg"),
    ]
    astronaut, chelsea, coffee = items
    assert astronaut.caption == astronaut.sidecar_caption() == "An astronaut."
    assert astronaut.metadata == {}  # at the root: no category
    assert chelsea.caption == "A tabby cat."
    assert chelsea.metadata == {"license": "CC0", "category": "animals"}
    assert coffee.caption is None and coffee.sidecar_caption() == ""
    assert coffee.metadata == {"category": "drinks/hot"}
    assert all(i.path == Path(i.source) and i.error is None for i in items)
    assert_is(astronaut, small["astronaut"])
    assert_is(chelsea, small["chelsea"])
    assert_is(coffee, small["coffee"], exact=False)


def test_files_globs_and_file_urls_are_read_once(folder: Path) -> None:
    cat = folder / "animals" / "chelsea.png"
    items = list(iter_sources([cat, str(folder / "**" / "*.png"), cat.resolve().as_uri(), folder]))
    names = [i.name for i in items]
    assert names == ["chelsea.png", "astronaut.png", "coffee.jpg"]
    specs = [cat, str(folder / "**" / "*.png"), cat.resolve().as_uri(), folder]
    assert count_sources(specs) == len(items) == 3  # for progress bars: each file once
    assert items[0].caption == "A tabby cat."
    assert "category" not in items[0].metadata  # a single file has no source root


def test_sidecar_caption_of_a_bare_item_reads_txt_then_json(folder: Path) -> None:
    assert SourceItem(
        str(folder / "astronaut.png"), folder / "astronaut.png"
    ).sidecar_caption() == ("An astronaut.")
    cat = folder / "animals" / "chelsea.png"
    assert SourceItem(str(cat), cat).sidecar_caption() == "A tabby cat."
    assert SourceItem(str(cat), cat, caption="given").sidecar_caption() == "given"


# --------------------------------------------------------------------------- Hugging Face


def test_saved_dataset_rows_with_image_bytes_captions_and_metadata(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    import datasets

    images = [{"bytes": encode(small[n], "PNG"), "path": f"{n}.png"} for n in NAMES]
    table = {"id": [10, 11, 12], "image": images, "text": ["astro", "cup", None]}
    dataset = datasets.Dataset.from_dict(table).cast_column("image", datasets.Image())
    dataset.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": dataset.select([2])}).save_to_disk(str(tmp_path / "dd"))

    items = list(iter_sources([tmp_path / "ds", tmp_path / "dd"], batch_size=2))
    assert [i.source for i in items] == [
        f"{tmp_path / 'ds'}#row=0",
        f"{tmp_path / 'ds'}#row=1",
        f"{tmp_path / 'ds'}#row=2",
        f"{tmp_path / 'dd' / 'train'}#row=0",
    ]
    assert [i.caption for i in items] == ["astro", "cup", None, None]
    assert [i.metadata for i in items] == [{"id": 10}, {"id": 11}, {"id": 12}, {"id": 12}]
    assert all(i.path is None and i.error is None for i in items)
    for item, name in zip(items, [*NAMES, "chelsea"], strict=True):
        assert_is(item, small[name])
    assert items[1].name == "ds-row=1"


def test_imagefolder_takes_captions_from_metadata_not_sidecars(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    root = tmp_path / "imagefolder"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(small["astronaut"]).save(root / "astronaut.png")
    Image.fromarray(small["coffee"]).save(root / "sub" / "coffee.png")
    Image.fromarray(small["chelsea"]).save(root / "chelsea.png")  # listed nowhere
    (root / "chelsea.txt").write_text("a sidecar that imagefolder ignores", encoding="utf-8")
    rows = [
        {"file_name": "sub/coffee.png", "text": "A cup of coffee.", "score": 0.5},
        {"file_name": "astronaut.png", "text": "An astronaut."},
        {"file_name": "gone.png", "text": "deleted"},
    ]
    (root / "metadata.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )

    items = list(iter_sources([root]))
    assert [i.source for i in items] == [
        str(root / "sub" / "coffee.png"),
        str(root / "astronaut.png"),
        str(root / "gone.png"),
        str(root / "chelsea.png"),
    ]
    coffee, astronaut, gone, chelsea = items
    assert (coffee.caption, coffee.metadata) == (
        "A cup of coffee.",
        {"score": 0.5, "category": "sub"},
    )
    assert (astronaut.caption, astronaut.metadata) == ("An astronaut.", {})
    assert gone.error == f"missing file listed in {root / 'metadata.jsonl'}:3"
    with pytest.raises(OSError, match="missing file listed"):
        gone.read_bytes()
    assert chelsea.caption is None and chelsea.metadata == {}
    assert_is(coffee, small["coffee"])
    assert_is(chelsea, small["chelsea"])


def test_imagefolder_with_metadata_csv(tmp_path: Path, small: dict[str, np.ndarray]) -> None:
    root = tmp_path / "csvfolder"
    root.mkdir()
    Image.fromarray(small["coffee"]).save(root / "coffee.png")
    (root / "metadata.csv").write_text(
        "file_name,text,source_site\ncoffee.png,Coffee.,example.org\n", encoding="utf-8"
    )
    (item,) = iter_sources([root])
    assert (item.caption, item.metadata) == ("Coffee.", {"source_site": "example.org"})


# --------------------------------------------------------------------------- Parquet


def test_parquet_with_hf_image_structs_and_with_raw_bytes(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    hf_style = pa.table(
        {
            "image": pa.array(
                [{"bytes": encode(small[n], "PNG"), "path": f"{n}.png"} for n in NAMES],
                type=struct,
            ),
            "text": ["a", "b", "c"],
            "width": [64, 64, 64],
        }
    )
    raw = pa.table({"caption": ["cat"], "jpeg": [encode(small["chelsea"], "JPEG")]})
    tables = tmp_path / "tables"
    tables.mkdir()
    pq.write_table(hf_style, tables / "a.parquet")
    pq.write_table(raw, tables / "b.parquet")

    items = list(iter_sources([tables]))  # a folder holding only Parquet files
    assert count_sources([tables]) == 4  # from the Parquet footers
    assert [i.source for i in items] == [
        f"{tables / 'a.parquet'}#row=0",
        f"{tables / 'a.parquet'}#row=1",
        f"{tables / 'a.parquet'}#row=2",
        f"{tables / 'b.parquet'}#row=0",
    ]
    assert [i.caption for i in items] == ["a", "b", "c", "cat"]
    assert items[0].metadata == {"width": 64} and items[3].metadata == {}
    for item, name in zip(items[:3], NAMES, strict=True):
        assert_is(item, small[name])
    assert_is(items[3], small["chelsea"], exact=False)


def test_parquet_is_read_lazily_in_batches_of_batch_size(
    tmp_path: Path, small: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = encode(small["coffee"][:8, :8], "PNG")
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"image": [blob] * 100, "text": [str(i) for i in range(100)]}), path)
    calls: list[dict] = []
    batches: list[int] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        calls.append(kwargs)
        for batch in original(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    stream = iter_sources([path], batch_size=16)
    first = next(stream)
    assert first.source == f"{path}#row=0" and first.caption == "0"
    assert batches == [16]  # one batch read so far, not the whole file
    rest = list(stream)
    assert calls == [{"batch_size": 16}]
    assert batches == [16] * 6 + [4]
    assert [i.caption for i in rest] == [str(i) for i in range(1, 100)]
    assert rest[-1].source == f"{path}#row=99"


# --------------------------------------------------------------------------- webdataset


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def test_webdataset_shards_group_members_by_key(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "shard-000.tar", "w") as tar:
        _add(tar, "s/000.jpg", encode(small["coffee"], "JPEG"))
        _add(tar, "s/000.txt", b"A cup of coffee.\n")
        _add(tar, "s/000.cls", b"7")
        _add(tar, "s/001.png", encode(small["chelsea"], "PNG"))
        _add(tar, "s/001.json", json.dumps({"text": "A cat.", "nsfw": False}).encode())
        _add(tar, "s/002.txt", b"a caption without its image")
    with tarfile.open(shards / "shard-001.tar", "w") as tar:
        _add(tar, "003.aug.png", encode(small["astronaut"], "PNG"))  # key ends at first dot
        _add(tar, "003.png", encode(small["astronaut"], "PNG"))

    items = list(iter_sources([str(shards / "shard-*.tar")]))
    # uncompressed shards are counted from their headers (a sample = a key), for the bar
    assert count_sources([str(shards / "shard-*.tar")]) == len(items) == 4
    first = shards / "shard-000.tar"
    assert [i.source for i in items] == [
        f"{first}#s/000",
        f"{first}#s/001",
        f"{first}#s/002",
        f"{shards / 'shard-001.tar'}#003",
    ]
    coffee, cat, orphan, astronaut = items
    assert coffee.caption == "A cup of coffee."
    assert coffee.metadata == {"cls": "7", "image_ext": "jpg"}
    assert (cat.caption, cat.metadata) == ("A cat.", {"nsfw": False, "image_ext": "png"})
    assert orphan.error == "no image member in sample (members: .txt)"
    assert astronaut.metadata["image_ext"] == "png"
    assert all(i.path is None for i in items)
    assert_is(coffee, small["coffee"], exact=False)
    assert_is(cat, small["chelsea"])
    assert_is(astronaut, small["astronaut"])
    assert coffee.name == "shard-000-000"


def test_truncated_shard_and_corrupt_parquet_become_error_items(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w") as tar:
        _add(tar, "000.png", encode(small["chelsea"], "PNG"))
        _add(tar, "001.png", encode(small["astronaut"], "PNG"))
    broken = tmp_path / "broken.tar"
    broken.write_bytes(whole.getvalue()[: 512 + len(encode(small["chelsea"], "PNG")) + 700])
    items = list(iter_sources([broken]))
    assert [i.source for i in items] == [f"{broken}#000", f"{broken}#001"]
    assert items[0].error is None
    assert items[1].error is not None and items[1].error.startswith("unreadable tar shard")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    (item,) = iter_sources([junk])
    assert item.source == str(junk) and item.error.startswith("unreadable parquet file")
    assert count_sources([junk]) is None  # the progress total gives up; the run goes on


# --------------------------------------------------------------------------- URLs


class _Server:
    """A local HTTP server: ``/<name>.png`` photos, ``/missing``, ``/slow``, ``/flaky``."""

    def __init__(self, files: dict[str, bytes], slow_s: float) -> None:
        self.files, self.slow_s = files, slow_s
        self.hits: dict[str, int] = {}
        self.agents: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    count = server.hits[self.path]
                    server.agents.add(self.headers.get("User-Agent", ""))
                try:
                    if self.path == "/slow":
                        time.sleep(server.slow_s)
                    name = unquote(self.path.split("?")[0].lstrip("/"))
                    if self.path == "/flaky" and count == 1:
                        self.send_error(503)
                    elif self.path == "/flaky":
                        self._send(server.files["coffee.png"])
                    elif name in server.files:
                        self._send(server.files[name])
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(small: dict[str, np.ndarray]) -> Iterator[_Server]:
    files = {f"{n}.png": encode(small[n], "PNG") for n in NAMES}
    files["café crème.png"] = files["coffee.png"]  # sent percent-encoded as UTF-8
    served = _Server(files, slow_s=1.5)
    yield served
    served.close()


FAST = FetchConfig(workers=4, timeout_s=0.3, retries=1, backoff_s=0.01)


def test_url_list_keeps_order_and_reports_failures(
    tmp_path: Path, server: _Server, small: dict[str, np.ndarray]
) -> None:
    base = server.url
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"# photos to fetch\n{base}/slow\n{base}/astronaut.png\n\n{base}/missing\n"
        f"  {base}/flaky\n{base}/chelsea.png\n",
        encoding="utf-8",
    )
    items = list(iter_sources([listing], fetch=FAST))
    assert [i.source for i in items] == [
        f"{base}/slow",
        f"{base}/astronaut.png",
        f"{base}/missing",
        f"{base}/flaky",
        f"{base}/chelsea.png",
    ]
    slow, astronaut, missing, flaky, chelsea = items
    assert slow.error == "timed out (0.3 s) after 2 tries"
    assert missing.error == "HTTP 404 Not Found"
    with pytest.raises(OSError, match="HTTP 404"):
        missing.read_bytes()
    assert server.hits["/missing"] == 1  # a 4xx is final
    assert server.hits["/flaky"] == 2 and flaky.error is None  # a 5xx is retried
    assert_is(flaky, small["coffee"])
    assert_is(astronaut, small["astronaut"])
    assert_is(chelsea, small["chelsea"])
    assert astronaut.metadata == {"content_type": "image/png"}
    assert astronaut.path is None and astronaut.name == "astronaut.png"
    assert len(server.agents) == 1 and next(iter(server.agents)).startswith("restorelab/")


def test_csv_and_parquet_url_lists_carry_captions_and_columns(
    tmp_path: Path, server: _Server
) -> None:
    base = server.url
    with open(tmp_path / "urls.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "caption", "license"])
        writer.writerow([f"{base}/coffee.png", "Coffee.", "CC-BY"])
        writer.writerow([f"{base}/missing", "", ""])
        writer.writerow([f"{base}/café crème.png", "Café.", ""])
    pq.write_table(
        pa.table({"url": [f"{base}/chelsea.png"], "text": ["A cat."], "rank": [1]}),
        tmp_path / "urls.parquet",
    )
    items = list(
        iter_sources(
            [tmp_path / "urls.csv", tmp_path / "urls.parquet", f"{base}/astronaut.png"],
            fetch=FAST,
        )
    )
    coffee, missing, cafe, chelsea, astronaut = items
    assert (coffee.caption, coffee.metadata) == (
        "Coffee.",
        {"license": "CC-BY", "content_type": "image/png"},
    )
    assert (missing.caption, missing.metadata, missing.error) == (None, {}, "HTTP 404 Not Found")
    assert (cafe.source, cafe.caption, cafe.error) == (f"{base}/café crème.png", "Café.", None)
    assert cafe.read_bytes() == coffee.read_bytes()
    assert (chelsea.caption, chelsea.metadata["rank"]) == ("A cat.", 1)
    assert astronaut.source == f"{base}/astronaut.png" and astronaut.error is None


def test_downloads_stay_within_the_window(tmp_path: Path, server: _Server) -> None:
    listing = tmp_path / "many.txt"
    listing.write_text(
        "".join(f"{server.url}/coffee.png?{i}\n" for i in range(40)), encoding="utf-8"
    )
    stream = iter_sources([listing], fetch=FetchConfig(workers=2, window=3, timeout_s=5))
    assert next(stream).error is None
    time.sleep(0.2)  # give any stray worker the chance to run ahead
    assert sum(server.hits.values()) <= 3
    stream.close()


def test_failed_downloads_become_rejections_in_the_pipeline(
    tmp_path: Path, server: _Server
) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url}/missing\n", encoding="utf-8")
    from restorelab.curation import CurationError

    # nothing kept: no dataset that cannot load; the run's report is kept beside OUT
    with pytest.raises(CurationError, match=r"no image was kept of 1 inputs \(\{'unreadable': 1"):
        curate([listing], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "metadata.jsonl").exists()
    with open(tmp_path / ".out.failed" / "rejected.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["source"], r["reason"]) for r in rows] == [
        (f"{server.url}/missing", "unreadable: HTTP 404 Not Found")
    ]


# --------------------------------------------------------------------------- bad specs


def test_bad_specs_raise_naming_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"source not found: .*nope"):
        iter_sources([tmp_path / "nope"])
    odd = tmp_path / "photo.xyz"
    odd.write_bytes(b"?")
    with pytest.raises(ValueError, match=r"unknown source kind: .*photo\.xyz"):
        iter_sources([odd])
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        iter_sources(["ftp://example.org/a.png"])
    with pytest.raises(TypeError, match="a list of sources"):
        iter_sources(str(tmp_path))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        iter_sources([tmp_path], batch_size=0)
    with pytest.raises(ValueError, match=r"FetchConfig\.workers must be an integer >= 1"):
        FetchConfig(workers=0)
    pq.write_table(pa.table({"n": [1]}), tmp_path / "table.parquet")
    with pytest.raises(ValueError, match=r"table\.parquet: no image column .* columns: \['n'\]"):
        list(iter_sources([tmp_path / "table.parquet"]))
    (tmp_path / "list.csv").write_text("link\nhttp://x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list\.csv: a URL list needs a 'url' column"):
        list(iter_sources([tmp_path / "list.csv"]))


# --------------------------------------------------------------------------- accounting


def test_a_file_reached_through_links_enters_once(
    tmp_path: Path, small: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file, a link to it in the same folder, a linked folder and a relative spelling of
    the folder are one input (resolved paths), counted as repeated; two files stay two."""
    from restorelab.curation import SourceStats

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(encode(small["coffee"], "PNG"))
    (photos / "b.png").write_bytes(encode(small["astronaut"], "PNG"))
    (photos / "link.png").symlink_to(photos / "a.png")
    (tmp_path / "alias").symlink_to(photos, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    specs = [photos, tmp_path / "alias", "photos", Path("alias") / "b.png"]
    stats = SourceStats()
    items = list(iter_sources(specs, stats=stats))
    assert [Path(item.source).name for item in items] == ["a.png", "b.png"]
    assert stats.repeated == 1 + 3 + 3 + 1
    assert count_sources(specs) == 2
    # the fast resolution is realpath's, ".." after a link and relative spellings included
    from restorelab.curation.sources import _resolved

    (tmp_path / "deep" / "sub").mkdir(parents=True)
    (tmp_path / "jump").symlink_to(tmp_path / "deep" / "sub", target_is_directory=True)
    for spelled in [
        photos / "link.png",
        Path("alias") / "a.png",
        Path("jump") / ".." / "sub",
        tmp_path / "jump" / ".." / "photos" / "b.png",
        "photos/../alias/b.png",
    ]:
        assert _resolved(spelled) == os.path.realpath(spelled)


def test_each_input_identity_enters_once_however_sources_overlap(
    tmp_path: Path, small: dict[str, np.ndarray], server: _Server
) -> None:
    """The same Parquet file (by two spellings), the same URL (in a list and as a spec) and
    the same tar shard given twice each yield their items once, counted as repeated."""
    from restorelab.curation import SourceStats

    table = pa.table({"image": [encode(small[n], "PNG") for n in NAMES], "TEXT": ["a", "b", ""]})
    pq.write_table(table, tmp_path / "rows.parquet")
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        _add(tar, "000.png", encode(small["coffee"], "PNG"))
    listing = tmp_path / "urls.txt"
    url = f"{server.url}/astronaut.png"
    listing.write_text(f"{url}\n{url}\n", encoding="utf-8")
    specs = [
        tmp_path / "rows.parquet",
        str(tmp_path / "." / "rows.parquet"),
        listing,
        url,
        tmp_path / "shard.tar",
        tmp_path / "shard.tar",
    ]
    stats = SourceStats()
    items = list(iter_sources(specs, fetch=FAST, stats=stats))
    assert [Path(i.source).name if "://" not in i.source else i.source for i in items] == [
        "rows.parquet#row=0",
        "rows.parquet#row=1",
        "rows.parquet#row=2",
        url,
        "shard.tar#000",
    ]
    assert stats.repeated == 3 + 2 + 1
    assert server.hits["/astronaut.png"] == 1  # downloaded once
    assert count_sources(specs) == len(items) == 5
    # LAION's upper-case TEXT column is the caption, and the column used is reported
    assert [i.caption for i in items[:3]] == ["a", "b", None]
    assert items[0].caption_from == "column TEXT"
    assert stats.caption_columns == {"column TEXT": 2}


def test_output_folder_hidden_files_and_empty_sources(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    from restorelab.curation import SourceStats

    src = tmp_path / "src"
    (src / "out" / "images").mkdir(parents=True)
    (src / ".thumbs").mkdir()
    Image.fromarray(small["coffee"]).save(src / "coffee.png")
    Image.fromarray(small["astronaut"]).save(src / ".hidden.png")
    Image.fromarray(small["chelsea"]).save(src / ".thumbs" / "chelsea.png")
    Image.fromarray(small["chelsea"]).save(src / "out" / "images" / "chelsea.png")
    (src / "notes.pdf").write_bytes(b"%PDF")
    stats = SourceStats()
    items = list(iter_sources([src], exclude=[src / "out"], stats=stats))
    assert [Path(i.source).name for i in items] == ["coffee.png"]
    assert (stats.hidden, stats.excluded, stats.other_files) == (2, 1, 1)
    assert count_sources([src], exclude=[src / "out"]) == 1
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"source .*empty is empty: no image files \(1 hidden"):
        iter_sources([empty])
    pq.write_table(pa.table({"image": pa.array([], pa.binary())}), tmp_path / "none.parquet")
    with pytest.raises(ValueError, match=r"none\.parquet is empty: no rows"):
        iter_sources([tmp_path / "none.parquet"])
    (tmp_path / "urls.txt").write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"urls\.txt is empty: no URLs"):
        iter_sources([tmp_path / "urls.txt"])
    with pytest.raises(ValueError, match=r"out is empty"):
        iter_sources([src / "out"], exclude=[src / "out"])


def test_dataset_dict_reads_one_split_and_says_which(
    tmp_path: Path, small: dict[str, np.ndarray]
) -> None:
    import datasets

    from restorelab.curation import SourceStats

    def part(names: tuple[str, ...]) -> datasets.Dataset:
        images = [{"bytes": encode(small[n], "PNG"), "path": None} for n in names]
        return datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())

    datasets.DatasetDict(
        {"train": part(("astronaut", "coffee")), "test": part(("chelsea",))}
    ).save_to_disk(str(tmp_path / "dd"))
    stats = SourceStats()
    items = list(iter_sources([tmp_path / "dd"], stats=stats))
    assert [i.source for i in items] == [f"{tmp_path / 'dd' / 'train'}#row={k}" for k in (0, 1)]
    assert stats.notes == [
        f"{tmp_path / 'dd'}: read split 'train' of the DatasetDict (not read: test)"
    ]
    assert count_sources([tmp_path / "dd"]) == 2
    (item,) = iter_sources([tmp_path / "dd"], split="test")
    assert_is(item, small["chelsea"])
    with pytest.raises(
        ValueError, match=r"without a 'validation' split \(its splits: train, test\)"
    ):
        iter_sources([tmp_path / "dd"], split="validation")
