"""CPU time of a full fit per law, bands included: 3 per-step training curves, fit + bootstrap + leave-one-curve-out
refits (`fit`, the CLI's default 100 bootstrap draws), then the 90% band at every step of each curve (`predict`).

Data: the MPL split (cosine_24000, constant_24000, wsdcon_9) of one model size, resampled onto evenly spaced steps,
about --points points in all (see scaling_speed.per_step), the density of a per-step training log. Times are CPU
seconds of this process, single-threaded (OMP_NUM_THREADS=1). Target (issue 12): every law under 60 CPU-s.

    python scripts/bench/scaling_fit_time.py [--size 400] [--points 34000] [--laws annealing,multi_power] [--n-boot 100] [--dump fits.npz]

--dump writes each law's parameters, objective, convergence flag, cv_error, bootstrap draws, leave-one-curve-out refits
and band at every step, so that two versions of the fitter can be checked for the same optimum (compare two dumps
with numpy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from llmkit.scaling.fit import fit, predict
from llmkit.scaling.laws import LAWS
from scaling_eval import FIT_SETS, load_size  # noqa: E402  (same folder)
from scaling_speed import per_step  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/work/shared/data/scaling")
    p.add_argument("--size", default="400")
    p.add_argument("--points", type=int, default=34000)
    p.add_argument("--laws", default=",".join(LAWS))
    p.add_argument("--n-boot", type=int, default=100)
    p.add_argument("--dump", help="write the fits and bands to this .npz")
    args = p.parse_args()
    by_name = load_size(Path(args.data) / "mpl_luo2025" / f"csv_{args.size}")
    curves = per_step([by_name[n] for n in FIT_SETS["mpl_split"]], args.points)
    print(f"data: MPL {args.size}M, {', '.join(c.name for c in curves)} ({sum(len(c.step) for c in curves)} points), n_boot {args.n_boot}")
    out, dump = {}, {}
    for law in args.laws.split(","):
        t0 = time.process_time()
        fitted = fit(curves, law, n_boot=args.n_boot)
        t_fit = time.process_time() - t0
        for c in curves:
            band = predict(fitted, c.lr, np.arange(1, c.horizon + 1))
            dump.update({f"{law}/band/{c.name}": np.array(band)})
        dump.update({f"{law}/theta": fitted.theta, f"{law}/boot": fitted.boot, f"{law}/loco": fitted.loco,
                     f"{law}/objective": fitted.objective, f"{law}/converged": fitted.converged,
                     f"{law}/cv_error": np.nan if fitted.cv_error is None else fitted.cv_error})
        total = time.process_time() - t0
        out[law] = {"fit_cpu_s": round(t_fit, 2), "total_cpu_s": round(total, 2), "fit_error": fitted.rel_error[0], "warnings": fitted.warnings}
        print(f"{law:17s} fit+bootstrap+refits {t_fit:7.2f} CPU-s, with bands at every step {total:7.2f} CPU-s; "
              f"fit error {100 * fitted.rel_error[0]:.3f}% of loss; params {np.round(fitted.theta, 4).tolist()}"
              + "".join(f"\n    warning: {w}" for w in fitted.warnings), flush=True)
    if args.dump:
        np.savez(args.dump, **dump)
    print(json.dumps({k: v["total_cpu_s"] for k, v in out.items()}))


if __name__ == "__main__":
    main()
