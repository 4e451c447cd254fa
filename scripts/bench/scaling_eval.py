"""Fit some curves, predict the others, on the MPL data (Luo et al. 2025): point errors, band coverage and width, and
the band's fixed error terms (llmkit/scaling/calibration.py) re-measured and validated leave-one-size-out.

Two fit sets per model size and law: the MPL split (fit cosine_24000 + constant_24000 + wsdcon_9, predict the other
six) and a one-curve fit (cosine_24000 alone, predict the other eight). Per law, size and fit set: PredE (mean over
curves of the per-curve mean |err|/loss, as the MPL README), WorstE (mean over curves of the per-curve max), the share
of unseen points inside the 90% band, the median relative half-width of the band and its ratio to the median
relative error, the ratio of the 90th percentile of |error| to its median (a band of one width everywhere that covers
90% is that many median errors wide) and the median half-width over that 90th percentile, and the Kendall rank correlation of predicted vs observed final losses. The
band's fixed terms (misspecification, jackknife factor, extrapolation errors, distance share, schedule-difference
error) used for size X are measured on the other two sizes only, so the coverage shown is out of sample; --calibrate
prints them measured on all sizes (what calibration.py holds).

    python scripts/bench/scaling_eval.py [--data /work/shared/data/scaling] [--n-boot 50] [--calibrate]
        [--rule pooled|each|size-trend]

--rule compares ways to set the terms from the calibration sizes (the band's form is the same): pooled (each term
covers 90% of all their points; what calibration.py holds), each (90% of each size's points) or size-trend (each
term a power law in the model size through the two other sizes' own values; a fit does not know its model size, so
this one is a measurement only, and --calibrate prints the pooled terms).

The last line printed is one JSON object: coverage, half_width_over_error, pred_e, rank_corr, p90_over_median,
half_width_over_p90 per law (MPL split, mean over sizes) and the same under one_curve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, norm

from llmkit.scaling.fit import Curve, band_variance, choose_law, fit, point_prediction
from llmkit.scaling.laws import LAWS
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
FIT_SETS = {"mpl_split": ("cosine_24000", "constant_24000", "wsdcon_9"), "one_curve": ("cosine_24000",)}
SETTINGS = {  # row label -> (law, options); the fixed band terms are per law, measured at its default options
    "annealing": ("annealing", {}),
    "annealing/actual": ("annealing", {"warmup": "actual"}),
    "annealing_2scale": ("annealing_2scale", {}),
    "multi_power": ("multi_power", {}),
    "power": ("power", {}),
    "auto": ("auto", {}),  # its fixed band terms here are measured on whichever laws it picked
}
Z90 = norm.ppf(0.95)
METRICS = ("coverage", "half_width_over_error", "pred_e", "rank_corr", "p90_over_median", "half_width_over_p90")  # the last line's, per law
JACKKNIFE_FACTORS = (0.0, 0.25, 0.5, 1.0)


def load_size(folder: Path) -> dict:
    curves = {}
    for name, spec in MPL_SPECS.items():
        log = read_log(folder / f"{name}.csv")
        curves[name] = Curve(name, parse_schedule(spec), log.loss.step, log.loss.value)
    return curves


def held_out_terms(curves: dict, law: str, options: dict, fit_set: tuple, n_boot: int) -> dict:
    """Fit `fit_set`, and per unseen curve: log errors and the band variance split into the part the fit measures
    (`base`) and the factors of the fixed terms' squares: the jackknife (`jack`), distance share (`dist2`) and
    extrapolation error with (`ext`) or without (`ext_single`) a jackknife; plus final losses, for the rank and pair
    checks."""
    start = time.perf_counter()
    if law == "auto":  # the law --law auto picks on the fitted curves alone
        law = choose_law([curves[n] for n in fit_set])[0]
    fitted = fit([curves[n] for n in fit_set], law, options, n_boot=n_boot)
    seconds = time.perf_counter() - start
    terms = ("jackknife", "distance", "extrap", "extrap_single")
    fitted.misspec = 0.0
    rows = {}
    for name, c in curves.items():
        if name in fit_set:
            continue
        feats = LAWS[law].features(c.lr / fitted.lr_peak, **fitted.options)
        mid = point_prediction(fitted, c.lr, c.step)
        var = {}
        for term in (None,) + terms:  # each term alone at 1 (the band's variance is linear in the terms' squares)
            for t in terms:
                setattr(fitted, t, 1.0 if t == term else 0.0)
            var[term] = band_variance(fitted, feats, c.step, mid)
        base = var[None]
        rows[name] = {"err": np.log(c.loss) - np.log(mid), "rel": np.abs(mid - c.loss) / c.loss, "base": base, "jack": var["jackknife"] - base,
                      "dist2": var["distance"] - base, "ext": var["extrap"] - base, "ext_single": var["extrap_single"] - base,
                      "final_pred": float(mid[-1]), "final_obs": float(c.loss[-1]), "horizon": c.horizon}
    return {"rows": rows, "seconds": seconds, "law": law}


def _covering(err: np.ndarray, base: np.ndarray, factor: np.ndarray, hi: float, size: np.ndarray, rule: str = "pooled") -> float:
    """The smallest t in [0, hi] whose 90% band, variance base + t^2 * factor, covers 90% of the held-out points
    (bisection); 0 for no points, or where even hi does not (a term that cannot describe these errors: the power law's
    distance share, it cannot see the schedule). Rule "each": 90% of each model size's points (`size`, per point), so
    the largest of the per-size values."""
    groups = [size == s for s in np.unique(size)] if rule == "each" else [np.ones(len(err), bool)]
    covered = lambda t: min(np.mean((err <= Z90 * np.sqrt(base + t**2 * factor))[g]) for g in groups) >= 0.9  # noqa: E731
    if len(err) == 0 or covered(0.0) or not covered(hi):
        return 0.0
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if covered(mid) else (mid, hi)
    return hi


def calibrate(runs: list[dict], rule: str = "pooled", jackknife_factors: tuple = JACKKNIFE_FACTORS) -> dict:
    """The fixed band terms from held-out results (see calibration.py), each the smallest value whose band covers 90%
    of the unseen points of its own region: up to the last fitted step (no extrapolation term there) the
    misspecification on the multi-curve fits (per jackknife factor; the factor with the narrowest median band wins)
    and the distance share on the one-curve fits; past it, given those, each fit type's extrapolation error. Set on
    all points at once, the extrapolation term could cover the minority of points past the horizon with a band of any
    width while the misspecification covers < 90% of the rest: the median width would not see it. `rule`: see
    _covering; `jackknife_factors`: the factors to choose from."""
    split = [r for run in runs if run["fit_set"] == "mpl_split" for r in run["rows"].values()]
    one = [r for run in runs if run["fit_set"] == "one_curve" for r in run["rows"].values()]
    cat = lambda rows, key: np.concatenate([r[key] for r in rows])  # noqa: E731
    sizes = lambda fit_set: np.concatenate([np.full(len(r["err"]), run["size"]) for run in runs if run["fit_set"] == fit_set for r in run["rows"].values()])  # noqa: E731
    err, base, jack, ext, size = np.abs(cat(split, "err")), cat(split, "base"), cat(split, "jack"), cat(split, "ext"), sizes("mpl_split")
    inside, past = ext == 0, ext > 0
    options = []
    for factor in jackknife_factors:
        var = base + factor * jack
        misspec = _covering(err[inside], var[inside], np.ones(inside.sum()), 0.1, size[inside], rule)
        extrap = _covering(err[past], var[past] + misspec**2, ext[past], 1.0, size[past], rule)
        options.append((np.median(var + misspec**2 + extrap**2 * ext), factor, misspec, extrap))
    _, jackknife, misspec, extrap = min(options)
    err, dist2, ext, size = np.abs(cat(one, "err")), cat(one, "dist2"), cat(one, "ext_single"), sizes("one_curve")
    var = cat(one, "base") + jackknife * cat(one, "jack") + misspec**2
    inside, past = ext == 0, ext > 0
    distance = _covering(err[inside], var[inside], dist2[inside], 10.0, size[inside], rule)
    extrap_single = _covering(err[past], var[past] + distance**2 * dist2[past], ext[past], 1.0, size[past], rule)
    pair_err = []
    for run in runs:
        if run["fit_set"] != "mpl_split":
            continue
        rows = list(run["rows"].values())
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                a, b = rows[i], rows[j]
                if a["horizon"] == b["horizon"]:
                    pair_err.append((np.log(a["final_pred"]) - np.log(b["final_pred"])) - (np.log(a["final_obs"]) - np.log(b["final_obs"])))
    diff = float(np.sqrt(np.mean(np.square(pair_err)))) if pair_err else 0.0
    return {"misspec": misspec, "jackknife": jackknife, "extrap": extrap, "distance": distance, "extrap_single": extrap_single, "diff": diff}


def log_linear(xs: list[float], values: list[float], at: float) -> float:
    """The power law in x through (xs, values) at `at` (ln value linear in ln x: interpolates between two sizes,
    extrapolates past them); 0 where a value is 0 (a term that does not apply to the law)."""
    if min(values) <= 0:
        return 0.0
    return float(np.exp(np.polyval(np.polyfit(np.log(xs), np.log(values), 1), np.log(at))))


def size_trend(runs: list[dict], size: str) -> dict:
    """Rule "size-trend": each term measured on every other model size alone (at the jackknife factor chosen on them
    all), then log-linear in the model size at `size` (needs the model size at prediction time, which a fit does not
    have; DIFF pooled)."""
    others = sorted({run["size"] for run in runs} - {size}, key=float)
    terms = calibrate([run for run in runs if run["size"] != size])
    own = [calibrate([run for run in runs if run["size"] == s], jackknife_factors=(terms["jackknife"],)) for s in others]
    for term in ("misspec", "extrap", "distance", "extrap_single"):
        terms[term] = log_linear([float(s) for s in others], [o[term] for o in own], float(size))
    return terms


def scores(run: dict, terms: dict) -> dict:
    """Held-out scores of one fit under the given fixed band terms."""
    rows = run["rows"].values()
    var = [r["base"] + terms["jackknife"] * r["jack"] + terms["misspec"] ** 2 + terms["distance"] ** 2 * r["dist2"]
           + terms["extrap"] ** 2 * r["ext"] + terms["extrap_single"] ** 2 * r["ext_single"] for r in rows]
    half = np.concatenate([Z90 * np.sqrt(v) for v in var])
    err = np.concatenate([np.abs(r["err"]) for r in rows])
    rel = np.concatenate([r["rel"] for r in rows])
    final_pred = [r["final_pred"] for r in rows]
    final_obs = [r["final_obs"] for r in rows]
    return {
        "pred_e": float(np.mean([r["rel"].mean() for r in rows])), "worst_e": float(np.mean([r["rel"].max() for r in rows])),
        "coverage": float(np.mean(err <= half)), "half_width": float(np.median(np.expm1(half))),
        "half_width_over_error": float(np.median(np.expm1(half)) / np.median(rel)),
        "p90_over_median": float(np.quantile(err, 0.9) / np.median(err)),
        "half_width_over_p90": float(np.median(np.expm1(half)) / np.quantile(rel, 0.9)),
        "rank_corr": float(kendalltau(final_pred, final_obs).statistic), "fit_seconds": run["seconds"], "law": run["law"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/work/shared/data/scaling")
    p.add_argument("--n-boot", type=int, default=50)
    p.add_argument("--sizes", default="25,100,400")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated keys of SETTINGS")
    p.add_argument("--calibrate", action="store_true", help="print the fixed band terms measured on all sizes")
    p.add_argument("--rule", choices=("pooled", "each", "size-trend"), default="pooled",
                   help="each term covers 90%% of the calibration sizes' points pooled (calibration.py), or of each "
                        "size's, or follows a power law in the model size through the other sizes' own values")
    p.add_argument("--out", default="scaling_eval.json")
    args = p.parse_args()
    sizes = args.sizes.split(",")
    if args.rule == "size-trend" and len(sizes) < 3:
        p.error("--rule size-trend needs three --sizes (a held-out size and two to draw the trend through)")
    data = {size: load_size(Path(args.data) / "mpl_luo2025" / f"csv_{size}") for size in sizes}
    results, summary, fixed = {}, {}, {}
    print(f"{'size':>4s} {'setting':18s} {'fit set':10s} {'PredE%':>7s} {'WorstE%':>8s} {'cov90':>6s} {'half%':>6s} {'half/err':>8s} {'p90/med':>7s} {'half/p90':>8s} {'tau':>5s} {'fit s':>6s}")
    for key in args.settings.split(","):
        law, options = SETTINGS[key]
        runs = [{"size": size, "fit_set": fs, **held_out_terms(data[size], law, options, names, args.n_boot)}
                for size in sizes for fs, names in FIT_SETS.items()]
        fixed[key] = calibrate(runs, "pooled" if args.rule == "size-trend" else args.rule)
        for run in runs:
            # out of sample: the fixed terms for this size come from the other sizes only
            if len(sizes) == 1:
                terms = fixed[key]
            elif args.rule == "size-trend":
                terms = size_trend(runs, run["size"])
            else:
                terms = calibrate([r for r in runs if r["size"] != run["size"]], args.rule)
            s = scores(run, terms)
            results[f"{run['size']}M {key} {run['fit_set']}"] = {**s, "terms": terms}
            print(f"{run['size']:>4s} {key:18s} {run['fit_set']:10s} {100 * s['pred_e']:7.3f} {100 * s['worst_e']:8.3f} {s['coverage']:6.2f} "
                  f"{100 * s['half_width']:6.3f} {s['half_width_over_error']:8.2f} {s['p90_over_median']:7.2f} {s['half_width_over_p90']:8.2f} {s['rank_corr']:5.2f} {s['fit_seconds']:6.1f}"
                  + (f"  -> {run['law']}" if key == "auto" else ""), flush=True)
        for fs in FIT_SETS:
            rows = [results[f"{size}M {key} {fs}"] for size in sizes]
            summary.setdefault(fs, {})[key] = {m: float(np.mean([r[m] for r in rows])) for m in METRICS}
    if args.calibrate:
        for term in ("misspec", "jackknife", "extrap", "distance", "extrap_single", "diff"):
            print(f"{term.upper()} = " + json.dumps({k: round(v[term], 5) for k, v in fixed.items()}))
    Path(args.out).write_text(json.dumps({"results": results, "fixed_terms_all_sizes": fixed}, indent=2) + "\n")
    final = {m: {k: v[m] for k, v in summary["mpl_split"].items()} for m in METRICS}
    final["one_curve"] = {m: {k: v[m] for k, v in summary["one_curve"].items()} for m in METRICS}
    print(json.dumps(final))


if __name__ == "__main__":
    main()
