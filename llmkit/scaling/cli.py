"""`llmkit fit` and `llmkit predict`: argument parsing only; the work is in llmkit.scaling.fit."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError
from llmkit.io import atomic_write_text, write_json
from llmkit.scaling.laws import LAWS


def _columns(text: str | None) -> dict | None:
    """`step=it,loss=train_loss` -> {"step": "it", "loss": "train_loss"}."""
    if not text:
        return None
    pairs = [p.split("=", 1) for p in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise LlmkitError(f"--columns {text!r}: expected canonical=column pairs, e.g. step=it,loss=train_loss")
    return {k.strip(): v.strip() for k, v in pairs}


def _print_warnings(caught) -> None:
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)


def fit_main(argv: list[str]) -> int:
    """llmkit fit LOG [LOG ...] [--law ...] [--holdout-after STEP] [--out DIR]"""
    from llmkit.scaling.fit import AUTO_LAWS, fit_run

    p = argparse.ArgumentParser(prog="llmkit fit", description="Fit a loss-curve law to one or more training logs.")
    p.add_argument("logs", nargs="+", metavar="LOG", help="run directory, metrics.jsonl, trainer_state.json, TensorBoard events, W&B export, CSV (step,lr,loss) or text log")
    p.add_argument("--law", default="annealing", choices=sorted(LAWS) + ["auto"],
                   help="auto: the law with the lowest leave-one-curve-out error (>= 2 curves, one annealing), else annealing")
    p.add_argument("--holdout-after", type=int, default=None, metavar="STEP", help="fit steps <= STEP only; report errors on the rest")
    p.add_argument("--out", default="fit", metavar="DIR")
    p.add_argument("--min-step", type=int, default=None, help="ignore earlier points (default: the end of warmup or 5%% of the run, whichever is later)")
    p.add_argument("--lam", type=float, default=None, help="annealing laws: momentum lambda of S2 (default 0.999)")
    p.add_argument("--lam-fast", type=float, default=None, help="annealing_2scale: the fast momentum lambda (default 0.99)")
    p.add_argument("--warmup", choices=["as_peak", "actual"], default=None,
                   help="annealing laws: warmup LR handling (default: as_peak, the paper's, for annealing; actual for annealing_2scale)")
    p.add_argument("--target", choices=["auto", "loss", "eval_loss"], default="auto", help="auto: eval loss when >= 10 points are logged")
    p.add_argument("--schedule", action="append", default=None, metavar="SPEC",
                   help="LR schedule spec or step,lr CSV for logs without a (complete) LR column: once for all logs, or once per LOG in order")
    p.add_argument("--format", default=None, help="force a log format (jsonl, json, csv, tensorboard, hf, megatron, nanogpt)")
    p.add_argument("--columns", default=None, help="column mapping, e.g. step=it,loss=train_loss,lr=learning_rate")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap refits for intervals (0: none)")
    args = p.parse_args(argv)
    options = {k: v for k, v in {"lam": args.lam, "lam_fast": args.lam_fast, "warmup": args.warmup}.items() if v is not None}
    laws = AUTO_LAWS if args.law == "auto" else [args.law]
    unused = sorted(set(options) - {k for law in laws for k in LAWS[law].defaults})
    if unused:
        flags = "/".join("--" + k.replace("_", "-") for k in unused)
        raise LlmkitError(f"{flags}: not used by --law {args.law}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_run(args.logs, law=args.law, holdout_after=args.holdout_after, out_dir=args.out, options=options,
                min_step=args.min_step, n_boot=args.n_boot, target=args.target, schedules=args.schedule,
                fmt=args.format, columns=_columns(args.columns))
    _print_warnings(caught)
    print((Path(args.out) / "summary.txt").read_text(), end="")
    print(f"wrote {args.out}/params.json, pred.json, pred.csv, curve.png")
    return 0


def predict_main(argv: list[str]) -> int:
    """llmkit predict FIT_DIR (--lr LR.csv | --schedule SPEC) [--out PRED.csv] [--compare SPEC ...] [--sweep-wsd] [--optimize]"""
    from llmkit.scaling.fit import compare_schedules, load_fit, predict, support_warnings
    from llmkit.scaling.schedules import read_lr_csv, schedule_lr, short_labels, spec_settings, wsd_sweep

    p = argparse.ArgumentParser(prog="llmkit predict", description="Predict the loss curve of a fitted law under an LR schedule.")
    p.add_argument("fit_dir", metavar="FIT_DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lr", metavar="LR.csv", help="CSV with columns step,lr")
    src.add_argument("--schedule", metavar="SPEC", help='e.g. "wsd:peak=3e-4,steps=50000,cooldown=0.2,shape=1-sqrt", or a step,lr CSV')
    p.add_argument("--out", default="pred.csv", metavar="PRED.csv")
    p.add_argument("--compare", nargs="+", default=None, metavar="SPEC",
                   help="also rank these schedules (specs or step,lr CSVs) by predicted final loss: table, PRED_compare.json and PRED_compare.png")
    p.add_argument("--sweep-wsd", action="store_true",
                   help="also rank WSD schedules with --schedule's peak, steps, warmup and min: cooldown 10-50%% x linear, 1-sqrt, cosine")
    p.add_argument("--optimize", action="store_true",
                   help="also find the monotone schedule with the lowest predicted final loss (--schedule's peak, steps, warmup "
                        "and min, default 0), rank it and write it to PRED_optimized_lr.csv")
    p.add_argument("--knots", type=int, default=24, help="--optimize: free LR points after warmup (default 24)")
    args = p.parse_args(argv)
    for flag, wanted in (("--sweep-wsd", args.sweep_wsd), ("--optimize", args.optimize)):
        if wanted and (not args.schedule or args.schedule.endswith(".csv") or Path(args.schedule).is_file()):
            raise LlmkitError(f"{flag} takes its peak, steps, warmup and min from a --schedule spec; an LR CSV gives none of them")
    if Path(args.out).is_dir():
        raise LlmkitError(f"--out {args.out}: is a directory; name the CSV file to write, e.g. {Path(args.out) / 'pred.csv'}")
    candidates = (args.compare or []) + (wsd_sweep(args.schedule) if args.sweep_wsd else [])
    fitted = load_fit(args.fit_dir)
    lr = read_lr_csv(args.lr) if args.lr else schedule_lr(args.schedule)
    candidate_lrs = {spec: schedule_lr(spec) for spec in candidates}  # a bad spec fails before anything is written
    out = Path(args.out)
    stem = out.with_suffix("")
    if args.optimize:
        from llmkit.scaling.optimize import optimize_schedule

        settings = spec_settings(args.schedule)
        optimized = optimize_schedule(fitted, settings["peak"], settings["steps"], settings["warmup"], settings["min"], args.knots)
        candidate_lrs[f"optimized ({args.knots} knots)"] = optimized
        atomic_write_text(Path(f"{stem}_optimized_lr.csv"), "step,lr\n" + "".join(f"{s},{v:.8g}\n" for s, v in enumerate(optimized)))
    for note in support_warnings(fitted, lr):
        print(f"warning: {note}", file=sys.stderr)
    steps = np.arange(1, len(lr))
    mid, lo, hi = predict(fitted, lr, steps)
    atomic_write_text(out, "step,loss,lo,hi\n" + "".join(f"{s},{m:.6f},{a:.6f},{b:.6f}\n"
                                                         for s, m, a, b in zip(steps, mid, lo, hi)))
    print(f"final step {steps[-1]}: loss {mid[-1]:.4f} (90% band {lo[-1]:.4f}-{hi[-1]:.4f}); wrote {out}")
    if candidate_lrs:
        from llmkit.scaling.plot import plot_schedules

        schedules = {args.lr or args.schedule: lr, **candidate_lrs}
        table = compare_schedules(fitted, schedules)
        write_json(Path(f"{stem}_compare.json"), table)
        plot_schedules(fitted, schedules, table, f"{stem}_compare.png")
        labels = dict(zip(schedules, short_labels(list(schedules))))
        width = max(len(label) for label in labels.values())
        print(f"{'schedule':{width}s} {'final':>8s} {'90% interval':>19s} {'P(best)':>8s} {'gain vs query, 90% interval':>30s} {'P(better)':>9s}  verdict")
        for row in sorted(table, key=lambda r: r["final_loss"]):
            print(f"{labels[row['schedule']]:{width}s} {row['final_loss']:8.4f} {row['lo']:8.4f}-{row['hi']:8.4f}  {row['p_best']:7.2f} "
                  f"{row['gain']:+9.4f} ({row['gain_lo']:+.4f} to {row['gain_hi']:+.4f}) {row['p_better']:9.2f}  {row['verdict']}")
        print(f"gains, P(better) and P(best) carry the bootstrap spread and the {fitted.law} law's error on schedule differences "
              f"({fitted.diff:.4f} in log loss, measured on unseen development schedules); indistinguishable: the interval covers 0")
        print(f"wrote {stem}_compare.json and {stem}_compare.png" + (f" and {stem}_optimized_lr.csv" if args.optimize else ""))
    return 0
