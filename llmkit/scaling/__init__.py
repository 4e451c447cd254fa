"""LR-schedule-aware loss-curve laws: read logs, fit, predict, plot."""
