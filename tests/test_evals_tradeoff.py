"""The demo's trade-off table and plot, on hand-made TOFU summaries."""

import json

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from llmkit.evals.tradeoff import Checkpoint, run_trajectory, save_tradeoff_plot, tradeoff_figure, tradeoff_table


def summary(fq, mu, forget_rouge=0.5, retain_rouge=0.9, collapsed=False):
    return {"benchmark": "tofu", "forget_quality": fq, "model_utility": mu, "forget_Q_A_ROUGE": forget_rouge,
            "retain_Q_A_ROUGE": retain_rouge, "collapsed": collapsed}


TARGET = summary(1.2e-7, 0.61, 1.0, 1.0)
RETAIN = summary(1.0, 0.60, 0.31, 1.0)
CHECKPOINTS = [  # deliberately out of step order
    ("flat_kl", 20, summary(5e-4, 0.55), "ep 2"),
    ("flat_kl", 10, summary(2e-6, 0.59), "ep 1"),
    ("flat_kl", 30, summary(0.4, 0.02, 0.0, 0.01, collapsed=True), "ep 3"),
    ("grad_ascent", 10, summary(1e-5, 0.58)),
    ("grad_ascent", 20, summary(None, 0.50)),  # no reference: cannot be placed
]


def parse(table):
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def test_table_values_and_dashes():
    rows = parse(tradeoff_table([("target", TARGET), ("retain", RETAIN), ("flat_kl ep 3", CHECKPOINTS[2][2]),
                                 ("grad_ascent ep 2", CHECKPOINTS[4][2]), ("not evaluated", None)]))
    assert [r["model"] for r in rows] == ["target", "retain", "flat_kl ep 3", "grad_ascent ep 2", "not evaluated"]
    assert rows[0] == {"model": "target", "forget quality": "1.2e-07", "model utility": "0.610",
                       "forget ROUGE": "1.000", "retain ROUGE": "1.000", "collapsed": "no"}
    assert rows[2]["collapsed"] == "yes" and rows[2]["forget quality"] == "0.4" and rows[2]["retain ROUGE"] == "0.010"
    assert rows[3]["forget quality"] == "–" and rows[3]["model utility"] == "0.500"
    assert set(rows[4].values()) == {"not evaluated", "–"}
    assert "None" not in tradeoff_table([("x", {"forget_quality": None})])


def test_figure_points_order_and_collapsed_markers():
    fig = tradeoff_figure(CHECKPOINTS, target=TARGET, retain=RETAIN)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "model utility"
    points = {c.get_label(): c for c in ax.collections}
    # 2 plain flat_kl + 1 collapsed flat_kl + 1 grad_ascent (its FQ-less checkpoint is left out) + target + retain
    sizes = {label: len(c.get_offsets()) for label, c in points.items()}
    assert sizes == {"flat_kl": 2, "flat_kl (collapsed)": 1, "grad_ascent": 1, "target": 1, "retain": 1}
    assert np.allclose(points["flat_kl"].get_offsets(), [[0.59, 2e-6], [0.55, 5e-4]])
    collapsed = points["flat_kl (collapsed)"]
    assert collapsed.get_facecolors().size == 0 or collapsed.get_facecolors()[0][3] == 0  # hollow
    assert tuple(collapsed.get_edgecolors()[0]) == to_rgba("red")
    # arrows: target -> ep1 -> ep2 -> ep3 (3) and target -> grad_ascent@10 (1), each segment in step order
    arrows = [(a.xyann, a.xy) for a in ax.texts if a.arrow_patch is not None]
    flat = [a for a in arrows if a[0][0] in (0.61, 0.59, 0.55) and a[1][0] in (0.59, 0.55, 0.02)]
    assert flat == [((0.61, 1.2e-7), (0.59, 2e-6)), ((0.59, 2e-6), (0.55, 5e-4)), ((0.55, 5e-4), (0.02, 0.4))]
    assert len(arrows) == 4
    labels = {t.get_text() for t in ax.texts if t.arrow_patch is None}
    assert {"ep 1", "ep 2", "ep 3", "10"} <= labels
    assert "grad_ascent@20" in ax.get_legend().get_title().get_text()


def test_png_written(tmp_path):
    path = save_tradeoff_plot([Checkpoint(*row) for row in CHECKPOINTS], tmp_path / "plots" / "tradeoff.png",
                              target=TARGET, retain=RETAIN)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["tradeoff.png"]


def test_run_trajectory_reads_checkpoints_in_step_order(tmp_path):
    run = tmp_path / "tofu_mini_forget10_flat_kl"
    for step, epoch, fq in ((10, 1.0, 0.01), (5, 0.5, 0.001), (15, 1.5, None)):
        ckpt = run / f"checkpoint-{step}"
        (ckpt / "eval").mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step}))
        if fq is not None:
            (ckpt / "eval" / "tofu_forget10_summary.json").write_text(json.dumps(summary(fq, 0.5)))
    traj = run_trajectory(run, "tofu_forget10", "FLAT")
    assert [(c.method, c.step, c.label, c.summary["forget_quality"]) for c in traj] == [
        ("FLAT", 5, "ep 0.5", pytest.approx(0.001)), ("FLAT", 10, "ep 1", pytest.approx(0.01))]
    assert run_trajectory(run, "tofu_forget01") == []
