"""scripts/bench/unlearn_tradeoff.py's summary on hand-made checkpoints: best FQ at MU >= 0.70 (collapsed ones never
count), the median across seeds, the table, the last JSON line and the plot; and its run discovery on real files."""

import json

import pytest
from conftest import load_script



@pytest.fixture(scope="module")
def bench():
    return load_script("scripts/bench/unlearn_tradeoff.py")


def pt(epoch, fq, mu, collapsed=False):
    return {"epoch": epoch, "fq": fq, "mu": mu, "collapsed": collapsed}


RESULTS = {
    "flat_kl": {0: [pt(1, 1e-5, 0.80), pt(2, 0.2, 0.71), pt(3, 0.9, 0.69)],
                1: [pt(1, 1e-4, 0.78), pt(2, 0.05, 0.75), pt(3, 0.5, 0.72, collapsed=True)],
                2: [pt(1, 1e-6, 0.60), pt(2, 0.3, 0.50), pt(3, 0.4, 0.40)]},
    "grad_ascent": {0: [pt(1, 0.01, 0.70), pt(2, 0.6, 0.0, collapsed=True)]},
}


def test_best_fq_median_table_and_json_line(bench):
    # seed 0: 0.2 (epoch 3 has MU 0.69 < 0.70); seed 1: 0.05 (epoch 3 is collapsed); seed 2: none qualifies
    assert [bench.best_fq(RESULTS["flat_kl"][s]) for s in (0, 1, 2)] == [0.2, 0.05, None]
    assert bench.best_fq(RESULTS["grad_ascent"][0]) == 0.01  # MU exactly 0.70 counts
    assert bench.median_or_none([0.2, 0.05, None]) == pytest.approx(0.125)
    assert bench.median_or_none([None]) is None
    assert bench.result_line(RESULTS) == {"methods": {
        "flat_kl": {"seeds": [0, 1, 2], "best_fq_at_mu70": [0.2, 0.05, None]},
        "grad_ascent": {"seeds": [0], "best_fq_at_mu70": [0.01]}}}
    json.dumps(bench.result_line(RESULTS))  # the last line is valid JSON
    lines = bench.table(RESULTS).splitlines()
    assert lines[0] == "| method | seed 0 | seed 1 | seed 2 | median | seeds with MU ≥ 0.70 |"
    assert lines[2] == "| flat_kl | 0.2 | 0.05 | — | 0.125 | 2/3 |"
    assert lines[3] == "| grad_ascent | 0.01 | — | — | 0.01 | 1/1 |"


def test_epochs_shared_by_all_seeds_and_the_plot(bench, tmp_path):
    uneven = {0: [pt(1, 0.1, 0.8), pt(2, 0.2, 0.7)], 1: [pt(1, 0.3, 0.6)]}
    assert [(e, len(p)) for e, p in bench.by_epoch(uneven)] == [(1, 2)]
    path = bench.plot(RESULTS, {"forget_quality": 1e-9, "model_utility": 0.8}, None, tmp_path / "p.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_points_read_each_evaluated_checkpoint_by_epoch(bench, tmp_path):
    for step, epoch, summary in ((5, 1.0, {"forget_quality": 0.1, "model_utility": 0.8}),
                                 (10, 2.0, None),  # not evaluated: left out
                                 (15, 3.0, {"forget_quality": 0.4, "model_utility": 0.2, "collapsed": True})):
        ckpt = tmp_path / f"checkpoint-{step}"
        (ckpt / "eval").mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(json.dumps({"epoch": epoch}))
        if summary:
            (ckpt / "eval" / "tofu_forget10_summary.json").write_text(json.dumps(summary))
    assert bench.points(tmp_path) == [pt(1, 0.1, 0.8), pt(3, 0.4, 0.2, collapsed=True)]
