"""The external-command restorer (file and folder modes, failures) and the added classical
restorers: bilateral, Wiener, and the oracle PSF option of rl / wiener."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from restorelab.benchmark import create_restorer, run_benchmark
from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.restorers.classical import gaussian_psf, oracle_psf
from restorelab.benchmark.restorers.command import CommandError
from restorelab.degradations import degrade_with_params
from restorelab.degradations.grid import Grid
from restorelab.results import load_results

PY = sys.executable

BLUR = textwrap.dedent(
    """
    import sys
    import numpy as np
    from PIL import Image
    from scipy.ndimage import uniform_filter
    src, dst = sys.argv[1:3]
    image = np.asarray(Image.open(src)).astype(float)
    Image.fromarray(uniform_filter(image, size=(3, 3, 1)).round().astype(np.uint8)).save(dst)
    """
)

FOLDER = textwrap.dedent(
    """
    import shutil, sys
    from pathlib import Path
    src, dst = map(Path, sys.argv[1:3])
    names = sorted(p.name for p in src.iterdir())
    Path(sys.argv[3]).open("a").write(f"{len(names)}\\n")
    for name in names:
        shutil.copy(src / name, dst / name)
    """
)

FAIL = "import sys; sys.stderr.write('loading weights\\nCUDA out of memory\\n'); sys.exit(3)"

SHRINK = textwrap.dedent(
    """
    import sys
    from PIL import Image
    Image.open(sys.argv[1]).resize((8, 8)).save(sys.argv[2])
    """
)


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in {"blur": BLUR, "folder": FOLDER, "fail": FAIL, "shrink": SHRINK}.items():
        out[name] = tmp_path / f"{name}.py"
        out[name].write_text(text, encoding="utf-8")
    return out


def test_cmd_file_mode_runs_the_command(astronaut: np.ndarray, scripts: dict) -> None:
    restorer = create_restorer(f"cmd:{PY} {scripts['blur']} {{in}} {{out}}")
    out = restorer.restore(astronaut)
    expected = uniform_filter(astronaut.astype(float), size=(3, 3, 1)).round().astype(np.uint8)
    assert np.array_equal(out, expected)
    assert restorer.label == f"cmd:{PY} {scripts['blur']} {{in}} {{out}}"
    assert restorer.config["command"] in restorer.label


def test_cmd_config_hash_includes_the_command(scripts: dict) -> None:
    a = create_restorer(f"cmd:{PY} {scripts['blur']} {{in}} {{out}}")
    b = create_restorer(f"cmd:{PY} {scripts['blur']} --x {{in}} {{out}}")
    c = create_restorer("cmd", command=f"{PY} {scripts['blur']} {{in}} {{out}}")
    assert a.config_hash != b.config_hash and a.config_hash == c.config_hash
    d = create_restorer(f"cmd[timeout=5]:{PY} {scripts['blur']} {{in}} {{out}}")
    assert d.options["timeout"] == 5 and d.label.startswith("cmd[timeout=5]:")


def test_cmd_failure_names_command_code_and_stderr(astronaut: np.ndarray, scripts: dict) -> None:
    restorer = create_restorer(f"cmd:{PY} {scripts['fail']} {{in}} {{out}}")
    with pytest.raises(CommandError, match="exited with code 3") as info:
        restorer.restore(astronaut)
    assert "CUDA out of memory" in str(info.value) and str(scripts["fail"]) in str(info.value)


def test_cmd_missing_and_wrong_size_output(astronaut: np.ndarray, scripts: dict) -> None:
    with pytest.raises(CommandError, match=r"wrote no out\.png"):
        create_restorer(f"cmd:{PY} -c pass {{in}} {{out}}").restore(astronaut)
    with pytest.raises(CommandError, match=r"shape \(8, 8, 3\), expected \(128, 128, 3\)"):
        create_restorer(f"cmd:{PY} {scripts['shrink']} {{in}} {{out}}").restore(astronaut)


def test_cmd_timeout_and_bad_templates(astronaut: np.ndarray) -> None:
    slow = create_restorer(f"cmd[timeout=0.5]:{PY} -c 'import time; time.sleep(5)' {{in}} {{out}}")
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s"):
        slow.restore(astronaut)
    with pytest.raises(ValueError, match="lacks the placeholder"):
        create_restorer(f"cmd:{PY} r.py {{in}}")
    with pytest.raises(ValueError, match="give a command"):
        create_restorer("cmd:")


def test_cmd_folder_mode_batches(astronaut: np.ndarray, scripts: dict, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    restorer = create_restorer(
        f"cmd[batch_size=3]:{PY} {scripts['folder']} {{in_dir}} {{out_dir}} {log}"
    )
    assert restorer.batch_size == 3
    images = [np.roll(astronaut, k, axis=0) for k in range(4)]
    outs = restorer.restore_batch(images)
    assert all(np.array_equal(a, b) for a, b in zip(images, outs, strict=True))
    assert log.read_text().split() == ["3", "1"]


def test_cmd_in_the_runner_batches_and_records_failures(
    photo_folder: Path, scripts: dict, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    grid = Grid(name="g", degradations=["gaussian_noise"], severities=[1, 2], seeds=[0])
    folder = f"cmd[batch_size=4]:{PY} {scripts['folder']} {{in_dir}} {{out_dir}} {log}"
    failing = f"cmd:{PY} {scripts['fail']} {{in}} {{out}}"
    summary = run_benchmark(photo_folder, grid, [folder, failing], tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    assert log.read_text().split() == ["4", "2"]
    copied = frame[frame["restorer"] == create_restorer(folder).label]
    assert len(copied) == 6 and (copied["psnr"] == copied["input_psnr"]).all()
    failed = frame[frame["restorer"] == create_restorer(failing).label]
    assert len(failed) == 6 and failed["error"].str.contains("exited with code 3").all()
    assert len(summary.errors) == 6


@pytest.mark.parametrize(
    ("spec", "degradation", "severity"),
    [
        ("bilateral", "gaussian_noise", 3),
        ("wiener", "gaussian_blur", 2),
        ("wiener:oracle=true", "gaussian_blur", 3),
        ("wiener:oracle=true", "defocus_blur", 2),
        ("rl:oracle=true", "defocus_blur", 2),
    ],
)
def test_classical_restorers_improve_psnr(
    spec: str, degradation: str, severity: int, astronaut: np.ndarray
) -> None:
    degraded = degrade_with_params(astronaut, degradation, severity, seed=0)
    restored = create_restorer(spec).restore(degraded.image, degradation=degraded.params)
    psnr = create_metric("psnr")
    assert psnr(astronaut, restored) > psnr(astronaut, degraded.image) + 0.5


def test_oracle_uses_the_true_psf(astronaut: np.ndarray) -> None:
    degraded = degrade_with_params(astronaut, "gaussian_blur", 3, seed=0)  # sigma 3
    psnr = create_metric("psnr")
    guess = create_restorer("wiener:psf_sigma=1").restore(degraded.image)
    oracle = create_restorer("wiener:psf_sigma=1,oracle=true")
    assert psnr(astronaut, oracle.restore(degraded.image, degradation=degraded.params)) > (
        psnr(astronaut, guess) + 0.5
    )
    # without known parameters the oracle falls back to psf_sigma
    assert np.array_equal(oracle.restore(degraded.image), guess)


def test_oracle_psf_from_params() -> None:
    assert np.array_equal(oracle_psf({"name": "gaussian_blur", "sigma": 2.0}), gaussian_psf(2.0))
    disk = oracle_psf({"name": "defocus_blur", "radius": 4.0, "alias_blur": 0.5})
    assert disk.sum() == pytest.approx(1.0) and disk.shape[0] % 2 == 1
    chain = {
        "name": "a+b",
        "steps": [{"name": "gaussian_noise"}, {"name": "gaussian_blur", "sigma": 1.0}],
    }
    assert np.array_equal(oracle_psf(chain), gaussian_psf(1.0))
    assert oracle_psf({"name": "gaussian_noise", "sigma": 0.1}) is None
    assert oracle_psf(None) is None


def test_wiener_checks_balance() -> None:
    with pytest.raises(ValueError, match="balance must be > 0"):
        create_restorer("wiener:balance=0").restore(np.zeros((16, 16, 3), np.uint8))
