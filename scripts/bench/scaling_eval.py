"""Fit some curves, predict the others: the MPL split (Luo et al. 2025) for each model size and law.

Fit cosine_24000 + constant_24000 + wsdcon_9, predict the other six; report R2, PredE (mean over curves of the
per-curve mean |err|/loss, as the MPL README; and pooled over all points), WorstE (mean over curves of the per-curve
max, as the MPL README; and the overall max), final-loss error, Kendall tau between predicted and actual final
losses, and the share of unseen points inside the 90% band (all of them, and those past the fitted horizon).

    python scripts/bench/scaling_eval.py [--data ../shared/data/scaling] [--n-boot 100] [--floor] [--out scaling_eval.json]

--floor also fits each law on all nine curves and reports its PredE on the six: the in-sample floor that no
fit on three curves can be expected to beat.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from llmkit.scaling.fit import Curve, fit, holdout_metrics, predict, write_json
from llmkit.scaling.logs import read_log
from llmkit.scaling.schedules import parse_schedule

# Schedules as given in the data README (warmup 0 -> 3e-4 over 2160 steps for every curve).
MPL_SPECS = {
    "cosine_24000": "cosine:peak=3e-4,steps=24000,warmup=2160,min=3e-5",
    "constant_24000": "constant:peak=3e-4,steps=24000,warmup=2160",
    "wsdcon_9": "twostage:peak=3e-4,steps=16000,warmup=2160,switch=8000,second=9e-5",
    "constant_72000": "constant:peak=3e-4,steps=72000,warmup=2160",
    "cosine_72000": "cosine:peak=3e-4,steps=72000,warmup=2160,min=3e-5",
    "wsdcon_3": "twostage:peak=3e-4,steps=16000,warmup=2160,switch=8000,second=3e-5",
    "wsdcon_18": "twostage:peak=3e-4,steps=16000,warmup=2160,switch=8000,second=1.8e-4",
    "wsd_20000_24000": "wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=4000,shape=geometric,min=3e-5",
    "wsdld_20000_24000": "wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=4000,shape=linear,min=3e-5",
}
TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
SETTINGS = {
    "annealing/as_peak (official)": ("annealing", {"warmup": "as_peak"}),
    "annealing/actual": ("annealing", {"warmup": "actual"}),
    "annealing/actual lam=0.995": ("annealing", {"warmup": "actual", "lam": 0.995}),
    "annealing_2scale": ("annealing_2scale", {}),
    "multi_power": ("multi_power", {}),
    "power (LR-blind)": ("power", {}),
}


def load_size(folder: Path) -> dict:
    curves = {}
    for name, spec in MPL_SPECS.items():
        log = read_log(folder / f"{name}.csv")
        curves[name] = Curve(name, parse_schedule(spec), log.loss.step, log.loss.value)
    return curves


def evaluate(curves: dict, law: str, options: dict, n_boot: int) -> dict:
    start = time.perf_counter()
    fitted = fit([curves[n] for n in TRAIN], law, options, n_boot=n_boot)
    seconds = time.perf_counter() - start
    rel, worst, final_pred, final_obs, covered, beyond, per_curve = [], [], [], [], [], [], {}
    for name, c in curves.items():
        if name in TRAIN:
            continue
        mid, lo, hi = predict(fitted, c.lr, c.step)
        err = np.abs(mid - c.loss) / c.loss
        rel.append(err)
        worst.append(err.max())
        final_pred.append(mid[-1])
        final_obs.append(c.loss[-1])
        covered.append((c.loss >= lo) & (c.loss <= hi))
        beyond.append(c.step > fitted.horizon)
        per_curve[name] = {"pred_e": float(err.mean()), "worst_e": float(err.max()), "final_err": float(mid[-1] - c.loss[-1]),
                           "coverage_90": float(covered[-1].mean()), "band_half_width_final": float((hi[-1] - lo[-1]) / 2 / mid[-1])}
    obs = np.concatenate([curves[n].loss for n in per_curve])
    pred = np.concatenate([predict(fitted, curves[n].lr, curves[n].step)[0] for n in per_curve])
    return {
        "params": fitted.params(), "fit_seconds": seconds, "train_r2": fitted.r2, "warnings": fitted.warnings,
        "r2": float(1 - np.sum((obs - pred) ** 2) / np.sum((obs - obs.mean()) ** 2)),
        "pred_e": float(np.mean([e.mean() for e in rel])), "pred_e_pooled": float(np.concatenate(rel).mean()), "worst_e_mean": float(np.mean(worst)), "worst_e_max": float(np.max(worst)),
        "final_err_range": [float(min(p - o for p, o in zip(final_pred, final_obs))), float(max(p - o for p, o in zip(final_pred, final_obs)))],
        "kendall_tau_final": float(kendalltau(final_pred, final_obs).statistic),
        "coverage_90": float(np.concatenate(covered).mean()) if n_boot else None,
        "coverage_90_beyond_horizon": float(np.concatenate(covered)[np.concatenate(beyond)].mean()) if n_boot else None,
        "per_curve": per_curve,
    }


def in_sample_floor(curves: dict, law: str, options: dict) -> float:
    """PredE on the unseen curves of a fit that saw all nine: what the law's form allows there at best."""
    fitted = fit(list(curves.values()), law, options, n_boot=0)
    return float(np.mean([holdout_metrics(c.loss, *predict(fitted, c.lr, c.step))["pred_e"]
                          for name, c in curves.items() if name not in TRAIN]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data" / "scaling"))
    p.add_argument("--n-boot", type=int, default=100)
    p.add_argument("--sizes", default="25,100,400")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated keys of SETTINGS")
    p.add_argument("--floor", action="store_true", help="also fit each law on all nine curves: its in-sample PredE floor on the six")
    p.add_argument("--out", default="scaling_eval.json")
    args = p.parse_args()
    results = {}
    print(f"{'size':>4s} {'setting':30s} {'R2':>7s} {'PredE%':>7s} {'pooled':>7s} {'WorstE%':>8s} {'max%':>6s} {'final err':>17s} {'tau':>5s} "
          f"{'cov90':>5s} {'>hor':>5s} {'fit s':>6s}" + (f" {'floor%':>7s}" if args.floor else ""))
    for size in args.sizes.split(","):
        curves = load_size(Path(args.data) / "mpl_luo2025" / f"csv_{size}")
        for key in args.settings.split(","):
            law, options = SETTINGS[key]
            r = evaluate(curves, law, options, args.n_boot if law != "multi_power" else min(args.n_boot, 20))
            if args.floor:
                r["pred_e_floor"] = in_sample_floor(curves, law, options)
            results[f"{size}M {key}"] = r
            cov = f"{r['coverage_90']:.2f} {r['coverage_90_beyond_horizon']:5.2f}" if r["coverage_90"] is not None else "    -     -"
            print(f"{size:>4s} {key:30s} {r['r2']:7.4f} {100 * r['pred_e']:7.3f} {100 * r['pred_e_pooled']:7.3f} {100 * r['worst_e_mean']:8.3f} "
                  f"{100 * r['worst_e_max']:6.2f} {r['final_err_range'][0]:+8.4f}..{r['final_err_range'][1]:+.4f} {r['kendall_tau_final']:5.2f} "
                  f"{cov} {r['fit_seconds']:6.1f}" + (f" {100 * r['pred_e_floor']:7.3f}" if args.floor else ""), flush=True)
    write_json(Path(args.out), results)


if __name__ == "__main__":
    main()
