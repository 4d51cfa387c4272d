"""Device resolution: auto/cpu/cuda, a rank's GPU under torchrun/accelerate, child processes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorelab.devices import cuda_visible_devices, resolve_device

torch = pytest.importorskip("torch")


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees two CUDA GPUs (nothing is allocated on them in these tests)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == "cpu" and resolve_device(" CPU ") == "cpu"
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match=r"torch sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:-1", "", "tpu:0"])
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_bare_cuda_is_this_ranks_gpu(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == "cuda" and resolve_device("auto") == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == "cuda:1" and resolve_device("auto") == "cuda:1"
    monkeypatch.setenv("LOCAL_RANK", "3")  # 4 ranks sharing 2 GPUs
    assert resolve_device("cuda") == "cuda:1"
    assert resolve_device("cuda:0") == "cuda:0"  # an explicit index wins
    with pytest.raises(ValueError, match="sees 2 CUDA GPU"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        resolve_device("cuda")


def test_child_process_visibility(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cuda_visible_devices("cuda:1") == "1"
    assert cuda_visible_devices("cpu") is None and cuda_visible_devices("cuda") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, 6")
    assert cuda_visible_devices("cuda:1") == "6"
    with pytest.raises(ValueError, match="lists 2 GPU"):
        cuda_visible_devices("cuda:2")


_REPORT_GPU = (
    "import os, shutil, sys; shutil.copy(sys.argv[1], sys.argv[2]); "
    "open(sys.argv[3], 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))"
)


def test_command_restorer_drives_only_its_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restorelab.benchmark import create_restorer

    seen = tmp_path / "seen.txt"
    script = tmp_path / "report_gpu.py"
    script.write_text(_REPORT_GPU, encoding="utf-8")
    restorer = create_restorer(f"cmd:{sys.executable} {script} {{in}} {{out}} {seen}")
    image = np.zeros((8, 8, 3), np.uint8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    restorer.restore(image)
    assert seen.read_text() == "2,3" and restorer.device == "cpu"  # not placed: inherits
    config = restorer.config_hash
    assert restorer.to("cuda:1") is restorer and restorer.device == "cuda:1"
    restorer.restore(image)
    assert seen.read_text() == "3"
    assert restorer.config_hash == config  # placement is not configuration


def test_bench_records_the_device_and_refuses_a_missing_gpu(
    tmp_path: Path, photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from restorelab.app.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    Image.fromarray(photos["coffee"]).save(corpus / "coffee.png")
    args = ["bench", "--corpus", str(corpus), "--grid", "mini", "--restorer", "identity"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["invocations"][-1]["device"] == "cpu"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r2"), "--device", "cuda"])
    assert missing.exit_code == 1 and "torch sees no CUDA GPU" in missing.output
    assert not (tmp_path / "r2").exists()  # refused before any work
