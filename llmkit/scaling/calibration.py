"""Error terms of the prediction band that no single fit can measure, fixed in advance per law on the development
curves (the MPL data of Luo et al. 2025: 9 schedules x 3 model sizes) and validated there by leave-one-size-out.

The law's errors on unseen schedules are heavy-tailed: 3x-horizon extrapolation misses by ~5x the median error (the
90th percentile of |error| is 5-6x the median on the 3-curve fits). A band of one width everywhere that covers 90% is
then 5-6 median errors wide at every point, so the width follows a feature of the query point known before its loss:
how far it lies past the last fitted step (EXTRAP, EXTRAP_SINGLE) and, without a jackknife, how far its predicted loss
lies from the nearest fitted point (DISTANCE).

Each term is the smallest value whose 90% band covers 90% of the unseen points of its own region, on the held-out
curves of fits to the development data (scripts/bench/scaling_eval.py):
MISSPEC (log loss): on the 3-curve fits (with a jackknife over >= 2 identifiable refits), up to the last fitted step.
JACKKNIFE: the factor on the jackknife variance, of 0, 1/4, 1/2 and 1, whose calibrated band (all terms here) has the
narrowest median; with the extrapolation term it came out 0 for every law but annealing_2scale (1/4): the refits
disagree most where the law errs least.
EXTRAP: on the 3-curve fits, the log-loss error per unit of ln(step / last fitted step), past that step.
DISTANCE: for fits with no jackknife (fewer than two identifiable refits: one curve), the law's error as a share of the
log-loss distance between a query point and the nearest fitted point (the same step, or the fitted horizon), from the
one-curve fits up to their last fitted step.
EXTRAP_SINGLE: EXTRAP of those fits, past their last fitted step.
Calibrating each region on its own keeps a term from covering its minority of points with a band of any width while
the other covers < 90% of the rest (the median width would not see it: chosen jointly for the narrowest median band,
multi_power's EXTRAP came out 0.4, a band of +-50% at 3x the horizon).
DIFF: the law's error on the difference of two schedules' final log losses (same horizon), from the 3-curve fits.

"90% of the unseen points" pools the model sizes. Checked leave-one-size-out (README, `scaling_eval.py --rule`,
2026-11-28): 90% of each size's points only widens, equal weights per size is the same rule here, and no value set on
two sizes covers 80-95% on the third for every law, because the extrapolation error grows with model size for the laws
that miss; terms that follow the model size would, but a fit does not know its model size.

Re-measure with `python scripts/bench/scaling_eval.py --calibrate` and copy its printed dicts here (the annealing row
at its default options).
"""

# Measured 2026-11-27 (`scaling_eval.py --calibrate`, n_boot 50, all three sizes); multi_power's re-measured
# 2026-11-28 after its refit in Bbeta (`--settings multi_power --calibrate`). The power law is LR-blind: its
# distance to another schedule at a fitted step is 0, so no share of it covers the schedule effect (DISTANCE 0); its
# one-curve band is not calibrated (see the README).
MISSPEC = {"annealing": 0.00135, "annealing_2scale": 0.00102, "multi_power": 0.00121, "power": 0.0}
JACKKNIFE = {"annealing": 0.0, "annealing_2scale": 0.25, "multi_power": 0.0, "power": 0.0}
EXTRAP = {"annealing": 0.00467, "annealing_2scale": 0.00489, "multi_power": 0.00914, "power": 0.00495}
DISTANCE = {"annealing": 0.32433, "annealing_2scale": 0.35854, "multi_power": 0.99123, "power": 0.0}
EXTRAP_SINGLE = {"annealing": 0.01757, "annealing_2scale": 0.01071, "multi_power": 0.00971, "power": 0.07544}
DIFF = {"annealing": 0.00444, "annealing_2scale": 0.00201, "multi_power": 0.00403, "power": 0.01644}
