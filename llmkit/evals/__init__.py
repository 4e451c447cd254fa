"""Evaluation suites: TOFU and MUSE unlearning metrics, exact to the published definitions.

A suite YAML names its `benchmark`; SUITES maps that name to the function that runs it:
run(suite_dict, overrides, suite_path, model, tokenizer, generator, reference_path) -> result dict.
"""

from llmkit.evals.muse import run_muse
from llmkit.evals.tofu import run_tofu

SUITES = {
    "tofu": run_tofu,
    "muse": run_muse,
}
