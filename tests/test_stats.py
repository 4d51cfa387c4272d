"""Statistics: bootstrap CIs, paired comparisons, breakdown severities and the run report.

Synthetic frames have answers known by construction; one test runs on a real tiny benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from restorelab.benchmark import run_benchmark
from restorelab.benchmark.stats import (
    breakdown_severity,
    compute_report,
    format_report,
    load_report,
    paired_comparison,
    summary_table,
    write_report,
)
from restorelab.degradations.grid import load_grid


def synthetic(
    scores: dict[str, np.ndarray],
    inputs: np.ndarray,
    *,
    degradation: str = "noise",
    severity: int = 1,
    seeds: int = 1,
) -> pd.DataFrame:
    """A results table: ``scores[restorer][image, seed]`` as psnr, ``inputs`` as input_psnr."""
    rows = []
    for restorer, values in scores.items():
        values = np.asarray(values, dtype=float).reshape(len(inputs), seeds)
        for i, input_score in enumerate(np.asarray(inputs, dtype=float).reshape(-1)):
            for s in range(seeds):
                rows.append(
                    {
                        "image_id": f"img{i:03d}",
                        "degradation": degradation,
                        "severity": severity,
                        "seed": s,
                        "restorer": restorer,
                        "config_hash": restorer[:4],
                        "psnr": values[i, s],
                        "input_psnr": input_score,
                        "ssim": values[i, s] / 100,
                        "input_ssim": input_score / 100,
                        "seconds": 0.1,
                        "error": "",
                    }
                )
    return pd.DataFrame(rows)


# --- summary_table ---------------------------------------------------------------------------
def test_summary_mean_n_and_input_mean() -> None:
    frame = synthetic({"tv": [30.0, 31.0, 32.0, 33.0]}, np.full(4, 28.0))
    table = summary_table(frame, ["psnr"], n_boot=200)
    row = table.iloc[0]
    assert list(table.columns) == [
        "restorer", "degradation", "severity", "metric", "mean", "ci_low", "ci_high", "n",
        "input_mean", "n_cells", "support",
    ]  # fmt: skip
    assert (row["mean"], row["n"], row["input_mean"]) == (31.5, 4, 28.0)
    assert 30.0 <= row["ci_low"] < 31.5 < row["ci_high"] <= 33.0


def test_summary_averages_seeds_within_an_image_first() -> None:
    # image 0 has two seeds (30, 40) → 35; image 1 (20, 20) → 20; the unit is the image
    frame = synthetic({"tv": [[30.0, 40.0], [20.0, 20.0]]}, np.full(2, 10.0), seeds=2)
    row = summary_table(frame, "psnr", n_boot=200).iloc[0]
    assert (row["mean"], row["n"]) == (27.5, 2)
    assert row["ci_low"] == pytest.approx(20.0) and row["ci_high"] == pytest.approx(35.0)


def test_summary_ci_covers_the_true_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(12345)
    true_mean, covered = 25.0, 0
    for _ in range(50):
        values = rng.normal(true_mean, 2.0, size=30)
        row = summary_table(synthetic({"tv": values}, values - 1), "psnr", n_boot=500).iloc[0]
        covered += row["ci_low"] <= true_mean <= row["ci_high"]
    assert covered >= 45  # nominal 95 %; the percentile bootstrap runs a little narrow
    widths = []
    for n in (10, 40, 160):
        z = rng.normal(size=n)
        values = true_mean + 2.0 * (z - z.mean()) / z.std(ddof=1)  # same mean and sd for every n
        row = summary_table(synthetic({"tv": values}, values - 1), "psnr", n_boot=2000).iloc[0]
        widths.append(row["ci_high"] - row["ci_low"])
    assert widths[0] > widths[1] > widths[2]
    # the width of a mean's interval shrinks like 1/sqrt(n): ×4 images → about half
    assert widths[1] / widths[0] == pytest.approx(0.5, abs=0.1)
    assert widths[2] / widths[1] == pytest.approx(0.5, abs=0.1)


def test_summary_is_deterministic_and_independent_of_other_groups() -> None:
    rng = np.random.default_rng(0)
    a = synthetic({"tv": rng.normal(30, 2, 12)}, np.full(12, 25.0))
    b = synthetic({"tv": rng.normal(30, 2, 12)}, np.full(12, 25.0), degradation="blur")
    alone = summary_table(a, "psnr", seed=3)
    again = summary_table(a, "psnr", seed=3)
    pd.testing.assert_frame_equal(alone, again)
    both = summary_table(pd.concat([a, b]), "psnr", seed=3).set_index("degradation")
    assert both.loc["noise", "ci_low"] == pytest.approx(alone.iloc[0]["ci_low"], rel=1e-12)
    assert summary_table(a, "psnr", seed=4).iloc[0]["ci_low"] != alone.iloc[0]["ci_low"]


def test_summary_pools_with_empty_by_and_ignores_failed_rows() -> None:
    frame = synthetic({"tv": [30.0, 32.0], "nlm": [20.0, 22.0]}, np.full(2, 10.0))
    frame.loc[0, ["psnr", "error"]] = [np.nan, "RuntimeError: boom"]
    table = summary_table(frame, ["psnr", "ssim"], by=(), n_boot=100)
    assert list(table["metric"]) == ["psnr", "ssim"]
    # tv/img0 failed: on common cells only img1 counts, for both restorers (27)
    assert table.iloc[0]["mean"] == pytest.approx(27.0)
    assert table.iloc[0]["support"] == "common cells"
    # on their own cells: img0 has only nlm (20), img1 has tv and nlm (27)
    own = summary_table(frame, ["psnr"], by=(), n_boot=100, support="own")
    assert own.iloc[0]["mean"] == pytest.approx((20.0 + 27.0) / 2)
    assert own.iloc[0]["support"] == "own cells"


# --- paired_comparison -----------------------------------------------------------------------
def test_paired_constant_one_db_better_wins_everywhere() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(28.0, 3.0, size=12)
    frame = synthetic({"good": base + 1.0, "ref": base}, base - 2.0)
    table = paired_comparison(frame, "good", "ref", "psnr", n_boot=500)
    assert len(table) == 2 and list(table["overall"]) == [False, True]
    for row in table.itertuples():
        assert row.mean_diff == pytest.approx(1.0)
        assert row.ci_low == pytest.approx(1.0) and row.ci_high == pytest.approx(1.0)
        assert (row.wins, row.ties, row.losses) == (12, 0, 0)
        assert row.p_value < 0.01
    assert pd.isna(table.iloc[1]["degradation"]) and pd.isna(table.iloc[1]["severity"])


def test_paired_identical_restorers_tie_with_p_one() -> None:
    base = np.linspace(20.0, 30.0, 10)
    frame = synthetic({"a": base, "b": base}, base - 1.0)
    table = paired_comparison(frame, "a", "b", ["psnr", "ssim"], n_boot=100)
    assert (table["mean_diff"] == 0).all()
    assert (table["ties"] == 10).all() and (table["wins"] + table["losses"] == 0).all()
    assert (table["p_value"] == 1.0).all()


def test_paired_wins_follow_the_metric_direction_and_tolerance() -> None:
    base = np.linspace(20.0, 30.0, 10)
    diffs = np.array([1.0, 1.0, 1.0, 1.0, 0.005, -0.005, -1.0, -1.0, -1.0, -1.0])
    frame = synthetic({"a": base + diffs, "b": base}, base)
    up = paired_comparison(frame, "a", "b", "psnr", overall=False, n_boot=100).iloc[0]
    assert (up.wins, up.ties, up.losses) == (4, 2, 4)
    down = paired_comparison(
        frame, "a", "b", "psnr", higher_is_better={"psnr": False}, overall=False, n_boot=100
    ).iloc[0]
    assert (down.wins, down.ties, down.losses) == (4, 2, 4) and not down.higher_is_better
    frame = synthetic({"a": base + 1.0, "b": base}, base)
    down = paired_comparison(
        frame, "a", "b", "psnr", higher_is_better={"psnr": False}, overall=False, n_boot=100
    ).iloc[0]
    assert (down.wins, down.losses, down.mean_diff) == (0, 10, pytest.approx(1.0))
    loose = paired_comparison(frame, "a", "b", "psnr", tie_tolerance=2.0, n_boot=100).iloc[0]
    assert loose.ties == 10


def test_paired_joins_on_common_cells_only() -> None:
    base = np.linspace(20.0, 30.0, 8)
    frame = synthetic({"a": base + 1, "b": base}, base)
    frame = frame[~((frame["restorer"] == "b") & (frame["image_id"] == "img000"))]
    row = paired_comparison(frame, "a", "b", "psnr", overall=False, n_boot=100).iloc[0]
    assert (row.n_images, row.n_cells) == (7, 7)


# --- breakdown_severity ----------------------------------------------------------------------
def _severity_frame(gains: list[float]) -> pd.DataFrame:
    inputs = np.linspace(24.0, 30.0, 5)
    parts = [
        synthetic({"r": inputs + gain}, inputs, severity=s) for s, gain in enumerate(gains, start=1)
    ]
    return pd.concat(parts, ignore_index=True)


def test_breakdown_at_first_severity_without_gain() -> None:
    table = breakdown_severity(_severity_frame([2.0, 1.0, 0.0, -1.0]), "psnr")
    row = table.iloc[0]
    assert (row["restorer"], row["degradation"], row["metric"]) == ("r", "noise", "psnr")
    assert row["breaks_at"] == 3 and row["reason"] == "no gain (+0.00)"
    assert row["gains"] == "1:+2.00 2:+1.00 3:+0.00 4:-1.00" and row["n_images"] == 5


def test_breakdown_never_and_lower_is_better() -> None:
    table = breakdown_severity(_severity_frame([2.0, 1.0, 0.5, 0.1]), "psnr")
    assert pd.isna(table.iloc[0]["breaks_at"]) and table.iloc[0]["reason"] == ""
    # for a lower-is-better metric the same numbers are a loss from the start
    flipped = breakdown_severity(
        _severity_frame([2.0, 1.0, 0.5, 0.1]), "psnr", higher_is_better={"psnr": False}
    )
    assert flipped.iloc[0]["breaks_at"] == 1 and flipped.iloc[0]["gains"].startswith("1:-2.00")


def test_breakdown_counts_a_negligible_gain_as_none() -> None:
    # +0.004 dB is within PSNR's 0.01 dB tie tolerance: the restorer has stopped helping
    table = breakdown_severity(_severity_frame([2.0, 0.004, 1.0]), "psnr")
    assert table.iloc[0]["breaks_at"] == 2 and table.iloc[0]["reason"] == "no gain (+0.00)"
    exact = breakdown_severity(_severity_frame([2.0, 0.004, 1.0]), "psnr", tie_tolerance=0.0)
    assert pd.isna(exact.iloc[0]["breaks_at"])
    # a label with options uses its metric's tolerance
    relabelled = _severity_frame([2.0, 0.004]).rename(
        columns={"psnr": "psnr:crop_border=4", "input_psnr": "input_psnr:crop_border=4"}
    )
    row = breakdown_severity(relabelled, "psnr:crop_border=4").iloc[0]
    assert row["breaks_at"] == 2


def test_breakdown_threshold_mode() -> None:
    # gains stay +1 at every severity, but the restored psnr falls 26, 23, 20, 17
    frame = pd.concat(
        [
            synthetic({"r": np.full(5, v)}, np.full(5, v - 1.0), severity=s)
            for s, v in enumerate([26.0, 23.0, 20.0, 17.0], start=1)
        ]
    )
    assert pd.isna(breakdown_severity(frame, "psnr").iloc[0]["breaks_at"])
    row = breakdown_severity(frame, ["psnr", "ssim"], threshold={"psnr": 21}).iloc[0]
    assert (row["breaks_at"], row["reason"]) == (3, "psnr < 21")


# --- input checks ----------------------------------------------------------------------------
def test_bad_inputs_raise_naming_the_valid_choices() -> None:
    frame = synthetic({"a": np.arange(4.0), "b": np.arange(4.0)}, np.arange(4.0))
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['lpips'\]; valid .*psnr, ssim"):
        summary_table(frame, ["lpips"])
    with pytest.raises(ValueError, match="unknown restorer 'zz'; valid: a, b"):
        paired_comparison(frame, "a", "zz", "psnr")
    with pytest.raises(ValueError, match="two different restorers"):
        paired_comparison(frame, "a", "a", "psnr")
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        summary_table(frame, "psnr", n_boot=0)
    with pytest.raises(ValueError, match="ci must lie strictly between 0 and 1"):
        summary_table(frame, "psnr", ci=95)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['colour'\]"):
        summary_table(frame, "psnr", by=("colour",))
    with pytest.raises(ValueError, match="by must name cell columns"):
        paired_comparison(frame, "a", "b", "psnr", by=("restorer",))
    with pytest.raises(ValueError, match="single threshold needs a single metric"):
        breakdown_severity(frame, ["psnr", "ssim"], threshold=20)
    with pytest.raises(ValueError, match=r"threshold for unknown metric\(s\) \['lpips'\]"):
        breakdown_severity(frame, "psnr", threshold={"lpips": 0.3})
    odd = frame.assign(sharp=1.0, input_sharp=0.5)
    with pytest.raises(ValueError, match="direction of metric 'sharp' is unknown"):
        breakdown_severity(odd, "sharp")
    with pytest.raises(TypeError, match="pandas DataFrame"):
        summary_table(frame.to_dict(), "psnr")


# --- a real run ------------------------------------------------------------------------------
def test_report_on_a_real_tiny_run(photo_folder: Path, tiny_grid_file: Path) -> None:
    run = photo_folder.parent / "run"
    grid = load_grid(tiny_grid_file)  # gaussian_blur, gaussian_noise × severities 1, 3
    run_benchmark(photo_folder, grid, ["identity", "tv"], run, progress=False)
    paths = write_report(run, vs=("tv", "identity"), n_boot=300)
    assert set(paths) == {"summary", "breakdown", "paired_tv_vs_identity", "leaderboard",
                          "gains", "coverage", "failures"}  # fmt: skip
    assert all(p.is_file() and p.parent == run / "report" for p in paths.values())

    report = compute_report(run, vs=("tv", "identity"), n_boot=300)
    pd.testing.assert_frame_equal(report.summary, pd.read_parquet(paths["summary"]))
    summary = report.summary.set_index(["restorer", "degradation", "severity", "metric"])
    assert (summary["n"] == 3).all()
    # identity returns its input unchanged: its mean is the input's and it never helps
    identity = summary.loc["identity"]
    assert np.allclose(identity["mean"], identity["input_mean"])
    breakdown = report.breakdown.set_index(["restorer", "degradation", "metric"])
    assert (breakdown.loc["identity", "breaks_at"] == 1).all()
    # tv denoises: a real gain on noise, every image, in both metrics
    paired = report.paired[("tv", "identity")]
    noise = paired[(paired["degradation"] == "gaussian_noise") & (paired["severity"] == 3)]
    assert (noise["ci_low"] > 0).all() and (noise["wins"] == 3).all()
    overall = paired[paired["overall"]].set_index("metric")
    assert overall.loc["psnr", "n_cells"] == 12 and overall.loc["psnr", "n_images"] == 3

    text = format_report(run)
    assert "== gaussian_noise · psnr (↑ higher is better)" in text
    assert "(degraded input)" in text and "tv vs identity" in text and "breakdown" in text
    assert set(load_report(run).paired) == {("tv", "identity")}
    # a later report without the pair drops the stale paired table
    write_report(run, n_boot=50)
    assert not list((run / "report").glob("paired_*"))
