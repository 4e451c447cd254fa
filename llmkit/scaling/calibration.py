"""Error terms of the prediction band that no single fit can measure, fixed in advance per law on the development
curves (the MPL data of Luo et al. 2025: 9 schedules x 3 model sizes) and validated there by leave-one-size-out.

MISSPEC: the law's out-of-schedule error in log loss that the bootstrap and the leave-one-curve-out terms leave
unexplained: sqrt(max(0, mean(err^2 - band variance without it))) over the unseen curves of the 3-curve fits.
JACKKNIFE: the factor on the jackknife variance over the identifiable refits: of 0, 1/4, 1/2 and 1, the one whose
90%-covering misspecification gives the narrowest median band on the 3-curve fits.
DISTANCE: for fits with no jackknife (fewer than two identifiable refits), the law's error as a share of the log-loss
distance between a query point and the nearest fitted point (the same step, or the fitted horizon), from one-curve fits.
DIFF: the law's error on the difference of two schedules' final log losses (same horizon), from the 3-curve fits.

Re-measure with `python scripts/bench/scaling_eval.py --calibrate` and copy its printed dicts here.
"""

# The power law is LR-blind: its distance to another schedule at a fitted step is 0, so no share of it can cover the
# schedule effect (the search for one ended on its bound); its one-curve band is not calibrated (see the README).
MISSPEC = {"annealing": 0.00136, "annealing_2scale": 0.0019, "multi_power": 0.00416, "power": 0.0}
DISTANCE = {"annealing": 0.9094, "annealing_2scale": 0.51074, "multi_power": 0.5659, "power": 0.0}
JACKKNIFE = {"annealing": 1.0, "annealing_2scale": 1.0, "multi_power": 0.25, "power": 0.0}
DIFF = {"annealing": 0.00444, "annealing_2scale": 0.00201, "multi_power": 0.00403, "power": 0.01644}
