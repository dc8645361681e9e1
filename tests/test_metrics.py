"""Metrics against values derived by hand on tiny arrays, and block-wise accumulation."""

import math

import numpy as np
import pytest

from gmsr_cli.errors import DataError
from gmsr_cli.train import metrics

# Two pixels, two bands. gt + 0.001 gives denominators 1.0 and 0.5:
#   pixel 1: gt (0.999, 0.499), rec (0.499, 0.499): |err| (0.5, 0)  -> relative (0.5 / 1.0, 0) = (0.5, 0)
#   pixel 2: gt (0.499, 0.999), rec (0.749, 0.999): |err| (0.25, 0) -> relative (0.25 / 0.5, 0) = (0.5, 0)
GT = np.array([[[0.999, 0.499], [0.499, 0.999]]])
REC = np.array([[[0.499, 0.499], [0.749, 0.999]]])
MRAE = (0.5 + 0 + 0.5 + 0) / 4  # 0.25
MSE = (0.5**2 + 0 + 0.25**2 + 0) / 4  # 0.078125
RMSE = 0.2795084971874737  # sqrt(0.078125)
PSNR = 11.072099696478684  # -10 log10(0.078125) = 10 log10(12.8)


def test_hand_values():
    got = metrics.compute_metrics(REC, GT)
    assert got["mrae"] == pytest.approx(MRAE, rel=1e-12)
    assert got["rmse"] == pytest.approx(RMSE, rel=1e-12)
    assert got["psnr"] == pytest.approx(PSNR, rel=1e-12)
    assert metrics.mrae(REC, GT) == pytest.approx(0.25, rel=1e-12)
    assert metrics.rmse(REC, GT) ** 2 == pytest.approx(MSE, rel=1e-12)
    assert metrics.psnr(REC, GT) == pytest.approx(PSNR, rel=1e-12)


def test_band_rmse_hand_values_and_blocks():
    # band 0 errors (0.5, 0.25): sqrt((0.25 + 0.0625) / 2); band 1 is exact
    acc = metrics.MetricAccumulator()
    acc.update(REC, GT)
    assert acc.band_rmse() == pytest.approx([math.sqrt(0.15625), 0.0], rel=1e-12)
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 1, size=(9, 7, 31))
    rec = gt + rng.normal(0, 0.02, size=gt.shape) * np.linspace(1, 3, 31)  # error grows with band
    whole = metrics.MetricAccumulator()
    whole.update(rec, gt)
    blocks = metrics.MetricAccumulator()
    blocks.update(rec[:4], gt[:4])
    blocks.update(rec[4:], gt[4:])
    assert blocks.band_rmse() == pytest.approx(whole.band_rmse(), rel=1e-12)
    expected = np.sqrt(((rec - gt) ** 2).mean(axis=(0, 1)))
    assert whole.band_rmse() == pytest.approx(list(expected), rel=1e-12)
    with pytest.raises(DataError):
        metrics.MetricAccumulator().band_rmse()


def test_sam_hand_values():
    gt = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    rec = np.array([[1.0, 1.0], [0.0, 2.0], [6.0, 8.0], [-1.0, 0.0], [0.0, 0.0], [0.5, 0.0]])
    # 45 (diagonal), 90 (orthogonal), 0 (same direction, scale 2), 180 (opposite),
    # 0 (both zero, by convention), 90 (one zero, by convention)
    assert metrics.sam(rec, gt) == pytest.approx((45 + 90 + 0 + 180 + 0 + 90) / 6, abs=1e-6)
    # the cosine of parallel spectra may round past 1: clipped, not NaN
    v = np.array([[0.1, 0.7, 0.3]])
    assert metrics.sam(3 * v, v) == pytest.approx(0.0, abs=1e-5)


def test_perfect_reconstruction():
    gt = np.random.default_rng(0).uniform(size=(4, 5, 31))
    got = metrics.compute_metrics(gt.copy(), gt)
    assert got["mrae"] == 0 and got["rmse"] == 0 and got["psnr"] == math.inf
    assert got["sam"] == pytest.approx(0.0, abs=1e-5)


def test_constant_offset():
    # rec = gt + 0.1 everywhere: RMSE 0.1, PSNR 20 dB exactly; MRAE = mean(0.1 / (gt + 0.001))
    gt = np.full((3, 3, 31), 0.099)
    got = metrics.compute_metrics(gt + 0.1, gt)
    assert got["rmse"] == pytest.approx(0.1, rel=1e-12)
    assert got["psnr"] == pytest.approx(20.0, rel=1e-12)
    assert got["mrae"] == pytest.approx(1.0, rel=1e-12)
    assert got["sam"] == pytest.approx(0.0, abs=1e-5)  # flat spectra stay parallel


def test_blocks_equal_whole_image():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 1, size=(37, 11, 31)).astype(np.float32)
    rec = (gt + rng.normal(0, 0.05, size=gt.shape)).astype(np.float32)
    gt[0, 0] = 0
    rec[0, 0] = 0
    whole = metrics.compute_metrics(rec, gt)
    acc = metrics.MetricAccumulator()
    for r0, r1 in ((0, 5), (5, 6), (6, 30), (30, 37)):  # uneven row blocks
        acc.update(rec[r0:r1], gt[r0:r1])
    blocks = acc.result()
    for key in whole:
        assert blocks[key] == pytest.approx(whole[key], rel=1e-12)
    # and tiles (column blocks) too
    acc = metrics.MetricAccumulator()
    acc.update(rec[:, :4], gt[:, :4])
    acc.update(rec[:, 4:], gt[:, 4:])
    for key in whole:
        assert acc.result()[key] == pytest.approx(whole[key], rel=1e-12)


def test_large_input_chunked(monkeypatch):
    rng = np.random.default_rng(2)
    gt = rng.uniform(0.1, 1, size=(50, 31))
    rec = gt * 1.1
    expected = metrics.compute_metrics(rec, gt)
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 7)
    chunked = metrics.compute_metrics(rec, gt)
    for key in expected:
        assert chunked[key] == pytest.approx(expected[key], rel=1e-12)


def test_errors():
    with pytest.raises(DataError, match="matching shapes"):
        metrics.compute_metrics(np.zeros((2, 2, 31)), np.zeros((2, 2, 30)))
    with pytest.raises(DataError, match="no pixels"):
        metrics.MetricAccumulator().result()
