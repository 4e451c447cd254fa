"""`llmkit eval SUITE --model PATH [--reference FILE] [--out DIR] [--force] [--backend auto|hf|vllm] [--key value ...]`

SUITE is a suite YAML (eval/tofu_forget10.yaml) or its name (tofu_forget10, looked up in ./eval/, then llmkit's eval/). Any suite key can
be overridden with `--key value`. Writes <out>/eval/<suite>.json (per-item values and generations),
<suite>_summary.json and .md (the reported numbers, and `collapsed` with its reason: see evals/collapse.py) and
<suite>_reference.json (what a later run takes with --reference when this model is the retain/retrain model), and
last <suite>.complete.json (the digests of those files: the cache trusts a result only when it matches).
<out> defaults to the model directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.io import atomic_write_text, is_complete, mark_complete, write_json


# ./eval first (a user's own suites win), then the suites of the llmkit checkout, so a name works from any directory
SUITE_DIRS = (Path("eval"), Path(__file__).resolve().parents[2] / "eval")


def resolve_suite(name: str) -> Path:
    """A suite YAML path, or the name of one in ./eval/ or llmkit's eval/."""
    path = Path(name)
    if path.is_file():
        return path
    for folder in SUITE_DIRS:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for folder in SUITE_DIRS for p in folder.glob("*.yaml")})
    hint = did_you_mean(path.stem, known) or "; suites: " + ", ".join(known)
    raise LlmkitError(f"suite {name!r} not found (no such file, nor {name}.yaml in ./eval or {SUITE_DIRS[1]}){hint}")


def load_model(path: str):
    """Causal LM and tokenizer from a model or LoRA-adapter directory (or hub id), on GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit.model_files import is_peft_dir, load_tokenizer

    if is_peft_dir(path):
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(path, dtype="auto")
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), load_tokenizer(path)


def fingerprint(model_path: str, suite: dict, overrides: dict, reference: str | None) -> str:
    """What makes a cached result reusable: the suite, the overrides, the weights' files and the reference's bytes."""
    weights = sorted((str(p.relative_to(model_path)), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in Path(model_path).glob("*") if p.is_file()) if Path(model_path).is_dir() else model_path
    ref = hashlib.sha256(Path(reference).read_bytes()).hexdigest() if reference else None
    blob = json.dumps([suite, overrides, weights, ref], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def summary_table(suite_name: str, metrics: dict, absent: dict, collapse: dict | None = None) -> str:
    """The reported numbers as a markdown table, with one line per metric that could not be computed."""
    lines = [f"| {suite_name} | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4g} |" for key, value in metrics.items()]
    if collapse is not None:
        lines.append(f"| collapsed | {'yes: ' + collapse['collapse_reason'] if collapse['collapsed'] else 'no'} |")
    lines += [f"| {key} | n/a: {why} |" for key, why in absent.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point of `llmkit eval`."""
    from llmkit.config import load_recipe, parse_cli_overrides
    from llmkit.model_files import check_model_path
    from llmkit.startup import long_lived

    with long_lived():  # torch, transformers and the metrics' libraries
        from llmkit.evals import EMBEDDING_SUITES, SUITES

    parser = argparse.ArgumentParser(prog="llmkit eval", description=__doc__.split("\n\n")[1])
    parser.add_argument("suite")
    parser.add_argument("--model", required=True, help="model or LoRA adapter directory, hub id, or tiny:<preset>")
    parser.add_argument("--reference", help="reference file from evaluating the retain/retrain model")
    parser.add_argument("--out", help="results go to OUT/eval/ (default: the model directory; . for tiny: models and hub ids)")
    parser.add_argument("--force", action="store_true", help="recompute even if a cached result matches")
    parser.add_argument("--backend", default="auto", help="generation: auto | hf | vllm")
    parser.add_argument("--format", default="llmkit", choices=("llmkit", "open-unlearning"),
                        help="open-unlearning: also write its TOFU_EVAL.json and TOFU_SUMMARY.json (TOFU suites)")
    args, rest = parser.parse_known_args(argv)
    overrides = parse_cli_overrides(rest)

    suite_path = resolve_suite(args.suite)
    suite_name = suite_path.stem
    suite = load_recipe(suite_path)
    benchmark = suite.get("benchmark")
    if benchmark not in SUITES:
        raise LlmkitError(f"{suite_path}: benchmark {benchmark!r} is not one of {sorted(SUITES)}"
                          f"{did_you_mean(benchmark, SUITES)}")
    if args.format == "open-unlearning" and benchmark != "tofu":
        raise LlmkitError(f"--format open-unlearning: only TOFU suites have it, {suite_path} is benchmark {benchmark!r}")
    if args.reference:  # a bad reference fails now, not after minutes of model loading and generation
        from llmkit.evals.reference import check_reference_file

        check_reference_file(args.reference)
    model_path = check_model_path(args.model, "--model")
    # a tiny: model lives in the shared build cache, which is no place for results
    in_model_dir = Path(model_path).is_dir() and not args.model.startswith("tiny:")
    out_dir = Path(args.out or (model_path if in_model_dir else ".")) / "eval"
    if benchmark in EMBEDDING_SUITES:  # an embedder: loaded, cached and written by its own runner
        return SUITES[benchmark](suite, overrides, str(suite_path), model_path, out_dir, args.force)
    result_path = out_dir / f"{suite_name}.json"
    # written last and listing every file with its digest: a result is served from cache only when all of it is there
    marker = out_dir / f"{suite_name}.complete.json"
    key = fingerprint(model_path, suite, overrides, args.reference)
    if not args.force and is_complete(marker, fingerprint=key):
        cached = json.loads(result_path.read_text(encoding="utf-8"))
        print(f"llmkit eval: cached result for this model and suite in {result_path} (--force recomputes)")
        print(summary_table(suite_name, cached["metrics"], cached["absent"], cached.get("collapse")))
        write_format(args.format, out_dir, cached)
        return 0

    from llmkit.evals.generate import get_backend
    from llmkit.model_files import is_peft_dir

    start = time.time()
    backend = []

    def load(batch_size: int):
        """The model, its tokenizer and a generator batching by the suite's resolved batch_size."""
        with long_lived():  # the weights, and transformers' modelling code it imports on the way
            model, tokenizer = load_model(model_path)
        generator = get_backend(args.backend, model=model, tokenizer=tokenizer, model_path=model_path,
                                batch_size=batch_size, adapter=is_peft_dir(model_path))
        backend.append(generator.name)
        return model, tokenizer, generator

    result = SUITES[benchmark](suite, overrides, str(suite_path), load, args.reference)
    for metric, why in result["absent"].items():
        print(f"llmkit eval: {metric} not computed: {why}", file=sys.stderr)
    notes = result.get("notes", {})
    for metric, note in notes.items():
        print(f"llmkit eval: {metric}: {note}", file=sys.stderr)

    info = {"suite": suite_name, "benchmark": benchmark, "model": model_path, "reference": args.reference,
            "backend": backend[0], "fingerprint": key, "seconds": round(time.time() - start, 1),
            "config": result["config"], "sizes": result["sizes"]}
    ref = result["reference"]
    collapse = result["collapse"]
    written = {**info, "metrics": result["metrics"], "absent": result["absent"], "collapse": collapse,
               "items": result["items"]}
    marker.unlink(missing_ok=True)  # from here until the marker is rewritten, the folder holds no complete result
    write_json(result_path, written)
    # metrics that could not be computed are null at the top level, with the reason under "absent"
    absent_keys = dict.fromkeys(result["absent"])
    write_json(out_dir / f"{suite_name}_summary.json",
               {**info, **result["metrics"], **(collapse or {}), **absent_keys, "absent": result["absent"],
                **({"notes": notes} if notes else {})})
    table = summary_table(suite_name, result["metrics"], result["absent"], collapse)
    atomic_write_text(out_dir / f"{suite_name}_summary.md", table + "\n")
    from llmkit.evals.reference import write_reference

    write_reference(out_dir / f"{suite_name}_reference.json", benchmark=ref["benchmark"], suite=suite_name,
                    forget_split=ref["forget_split"], model=model_path, truth_ratios=ref.get("truth_ratios"),
                    mink_auc=ref.get("mink_auc"), item_nll=ref.get("item_nll"), min_k_variant=ref.get("min_k_variant"))
    write_format(args.format, out_dir, written)
    mark_complete(marker, [result_path, *(out_dir / f"{suite_name}{end}" for end in
                                          ("_summary.json", "_summary.md", "_reference.json"))], fingerprint=key)
    print(table)
    print(f"llmkit eval: wrote {result_path} and {suite_name}_summary.json ({info['seconds']} s)")
    return 0


def write_format(fmt: str, out_dir: Path, result: dict) -> None:
    """The result in another tool's file layout as well, when asked for."""
    if fmt == "open-unlearning":
        from llmkit.evals.ou_format import write_open_unlearning

        paths = write_open_unlearning(out_dir, result)
        print(f"llmkit eval: wrote {' and '.join(str(p) for p in paths)} (open-unlearning's format)")
