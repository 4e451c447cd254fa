"""scripts/bench/scaling_eval.py's calibration rules on hand-made held-out errors: a term covering 90% of the pooled
points against 90% of each model size's points, and the power law in model size of rule size-trend."""


import numpy as np
import pytest
from scipy.stats import norm
from conftest import load_script



@pytest.fixture(scope="module")
def bench():
    return load_script("scripts/bench/scaling_eval.py")


def run(size, fit_set, err):
    """One fit's held-out rows: errors only inside the fitted horizon, no variance of its own, no jackknife."""
    err = np.asarray(err, float)
    zeros = np.zeros(len(err))
    row = {"err": err, "base": zeros, "jack": zeros, "ext": zeros, "dist2": zeros, "ext_single": zeros,
           "horizon": 100, "final_pred": 3.0, "final_obs": 3.0}
    return {"size": size, "fit_set": fit_set, "rows": {"only": row}}


def test_misspec_covers_the_pooled_points_or_each_size(bench):
    # 25M misses by 1..10 (x1e-3), 100M by 10..100, signs alternating; the band's half-width is z90 * misspec
    small = [(-1) ** i * k * 1e-3 for i, k in enumerate(range(1, 11))]
    large = [(-1) ** i * k * 1e-3 for i, k in enumerate(range(10, 101, 10))]
    runs = [run("25", "mpl_split", small), run("100", "mpl_split", large),
            run("25", "one_curve", [0.0]), run("100", "one_curve", [0.0])]
    z90 = norm.ppf(0.95)
    # pooled: 18 of the 20 misses, 1..10, 10, 20, ..., 80, so up to 0.08
    assert bench.calibrate(runs, "pooled")["misspec"] == pytest.approx(0.08 / z90, rel=1e-6)
    # each: 9 of 10 per size, up to 0.009 at 25M and 0.09 at 100M, so the larger
    assert bench.calibrate(runs, "each")["misspec"] == pytest.approx(0.09 / z90, rel=1e-6)
    # one size alone: both rules agree
    assert bench.calibrate(runs[:1] + runs[2:3], "each")["misspec"] == pytest.approx(0.009 / z90, rel=1e-6)
    assert bench.calibrate(runs[:1] + runs[2:3], "pooled")["misspec"] == pytest.approx(0.009 / z90, rel=1e-6)


def test_log_linear_term_in_model_size(bench):
    # 1 at 25M and 4 at 100M: the term goes as size^1, so 16 at 400M and 2 at 50M; between 100M and 400M it halves
    assert bench.log_linear([25.0, 100.0], [1.0, 4.0], 400.0) == pytest.approx(16.0)
    assert bench.log_linear([25.0, 100.0], [1.0, 4.0], 50.0) == pytest.approx(2.0)
    assert bench.log_linear([100.0, 400.0], [4.0, 2.0], 25.0) == pytest.approx(8.0)
    assert bench.log_linear([25.0, 100.0], [0.0, 4.0], 400.0) == 0.0  # a term the law does not use stays off
