"""Evaluation suites: TOFU and MUSE unlearning metrics, exact to the published definitions; MTEB for embedders.

A suite YAML names its `benchmark`; SUITES maps that name to the function that runs it. Generation suites:
run(suite_dict, overrides, suite_path, load, reference_path) -> result dict, where load(batch_size) gives
(model, tokenizer, generator) once the suite's options, data and reference are checked.
Embedding suites (EMBEDDING_SUITES) load their own model and write their own results:
run(suite_dict, overrides, suite_path, model_path, out_dir, force) -> exit code.
"""

from llmkit.evals.mteb import run_mteb
from llmkit.evals.muse import run_muse
from llmkit.evals.tofu import run_tofu

SUITES = {
    "tofu": run_tofu,
    "muse": run_muse,
    "mteb": run_mteb,
}
EMBEDDING_SUITES = {"mteb"}
