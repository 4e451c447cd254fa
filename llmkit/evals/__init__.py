"""Evaluation suites: TOFU and MUSE unlearning metrics, exact to the published definitions."""
