"""Speed: llmkit's one-pass TOFU scoring vs per-metric and per-item evaluators, same model, same texts, same numbers.

The TOFU suite needs, per split, the log-probs of the answer, the truth ratio's base text (paraphrased answer on
forget/retain, the answer itself on real authors / world facts) and the k perturbed answers.
  - llmkit: one `answer_logprobs` call per split: every text of the split in one length-sorted, batched pass,
    identical texts scored once (on ra/wf the base text is the answer).
  - per-metric: one pass per text group the way open-unlearning's evaluator runs its sub-metrics (answer,
    base, perturbed; each a separate batched pass over the dataset in input order, no length sorting, shared
    texts scored again).
  - per-item: one forward per text (batch size 1), a plain loop.
All three tokenise with the same `encode_pair`, so their per-token log-probs must agree; the script checks that.
Generation (ROUGE) is the same greedy call in every evaluator and is timed once, to give the full-suite wall time
and the throughput in new tokens/s. `--generate_only` skips the scoring comparison and prints that figure as one
JSON line (the GPU check: the model goes on the GPU when there is one).

`--stages` profiles whole `llmkit eval` processes instead (the console script's path, `--force`, HF backend): each
run is a fresh Python process whose CPU-seconds (user + sys, every thread) and wall seconds are reported per stage
(interpreter start and exit, imports, model load, data load, scoring, generation, metrics and writing) and in total,
the minimum over `--repeat` runs. `--code DIR` runs another llmkit checkout the same way (e.g. an export of the
previous commit), interleaved with this one, for a before/after on the same loaded machine. Each repeat also times
the floor of any evaluator on the same libraries (python; torch + transformers imported; the model and tokenizer
loaded; rouge_score imported), one process per step. The last line is one JSON object: CPU-seconds per stage, after
the model load and for the whole process, the floor, and the peer's whole-process figure over llmkit's.

    OMP_NUM_THREADS=1 python scripts/bench/eval_speed.py [--model tiny:llama] [--forget_split forget10]
        [--batch_size 16] [--max_new_tokens 200] [--repeat 2] [--generate_only] [--out results.json]
    OMP_NUM_THREADS=1 python scripts/bench/eval_speed.py --stages --model runs/tofu_mini_target/final \
        [--repeat 3] [--code /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from llmkit.evals.scoring import answer_logprobs, encode_pair


@torch.no_grad()
def plain_logprobs(model, tokenizer, pairs, batch_size: int) -> list[np.ndarray]:
    """Input-order batches, right padding, no sorting, no de-duplication: the straightforward evaluator."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    for lo in range(0, len(pairs), batch_size):
        encoded = [encode_pair(tokenizer, p, a, add_eos=True, add_special_tokens=False) for p, a in pairs[lo:lo + batch_size]]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), pad_id)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, (ids, _) in enumerate(encoded):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            mask[row, :len(ids)] = 1
        logp = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().log_softmax(-1).cpu()  # [B, T, V]
        for row, (ids, start) in enumerate(encoded):
            targets = input_ids[row, start:len(ids)]
            out.append(logp[row, start - 1:len(ids) - 1].gather(-1, targets[:, None])[:, 0].double().numpy())
    return out


def text_groups(rows, prompts, base_key: str, answer_key: str) -> dict[str, list[tuple[str, str]]]:
    """(prompt, text) pairs of one split, by the sub-metric that scores them."""
    return {"answer": [(p, r[answer_key]) for p, r in zip(prompts, rows)],
            "base": [(p, r[base_key]) for p, r in zip(prompts, rows)],
            "perturbed": [(p, t) for p, r in zip(prompts, rows) for t in r["perturbed_answer"]]}


def time_generation(generator, tokenizer, groups, max_new_tokens: int) -> dict:
    """Greedy generation over every split's prompts after one warm-up batch: seconds and new tokens/s."""
    warm = next(iter(groups.values()))[0][:generator.batch_size]
    generator(warm, max_new_tokens=8, add_special_tokens=False, desc="warm-up")  # CUDA context, kernels, caches
    start = time.perf_counter()
    texts = [t for name, (prompts, _) in groups.items()
             for t in generator(prompts, max_new_tokens=max_new_tokens, add_special_tokens=False,
                                desc=f"{name}: generating")]
    seconds = time.perf_counter() - start
    # new tokens = the kept text re-encoded, + the EOS that ended a row early; pad steps of finished rows not counted
    tokens = sum(min(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1, max_new_tokens) for t in texts)
    return {"prompts": len(texts), "new_tokens": tokens, "seconds": seconds, "new_tokens_per_s": tokens / seconds}


# open-unlearning is not installed here; this is the figure an earlier session measured (issue 13), not this script
PEER_NOTE = ("peer, as measured by an earlier session (not by this script): open-unlearning's evaluator, its default "
             "TOFU experiment on the same fine-tuned tiny target and tofu-mini forget10, one thread: 16.9 s wall / "
             "11.1 CPU-s for the whole process, minimum of three runs")

# Runs inside the profiled process: times each stage of `llmkit eval` by wrapping the functions that do it, and
# ends the way the `llmkit` console script does (console_main; main in older checkouts).
STAGE_RUNNER = r"""
import contextlib, json, sys, time
T0 = (time.process_time(), time.perf_counter())
def since(t):
    return [time.process_time() - t[0], time.perf_counter() - t[1]]
try:  # what llmkit eval does around its imports (llmkit/startup.py; absent in older checkouts)
    from llmkit.startup import long_lived
except ImportError:
    long_lived = contextlib.nullcontext
with long_lived():
    import llmkit.cli as top, llmkit.evals.cli as cli, llmkit.evals.tofu as tofu, llmkit.evals.generate as generate
    import llmkit.data as data
    from llmkit.evals import SUITES  # noqa: F401  (what main imports first)
stages = {"imports": since(T0)}
def timed(owner, name, stage):
    fn = getattr(owner, name)
    def wrapper(*args, **kwargs):
        t = (time.process_time(), time.perf_counter())
        try:
            return fn(*args, **kwargs)
        finally:
            stages[stage] = [a + b for a, b in zip(stages.get(stage, [0.0, 0.0]), since(t))]
    setattr(owner, name, wrapper)
timed(cli, "load_model", "model load")
timed(data, "load_rows" if hasattr(data, "load_rows") else "load_split", "data load")  # load_split before
# the scoring entry point tofu calls (answer_token_stats; answer_logprobs in older checkouts)
timed(tofu, "answer_token_stats" if hasattr(tofu, "answer_token_stats") else "answer_logprobs", "scoring")
timed(generate.HFGenerator, "__call__", "generation")
sys.argv = ["llmkit", "eval", *sys.argv[1:]]
t = (time.process_time(), time.perf_counter())
code = top.main()
rest = since(t)
stages["metrics and writing"] = [r - sum(stages[k][i] for k in ("model load", "data load", "scoring", "generation"))
                                 for i, r in enumerate(rest)]
print("STAGES " + json.dumps(stages), flush=True)
assert code == 0
getattr(top, "before_exit", lambda: None)()
"""

# The floor of any evaluator built on the same libraries, whatever it does after: the interpreter, torch and
# transformers imported, the model and tokenizer loaded by transformers' Auto classes, and rouge_score (TOFU's ROUGE,
# which imports nltk, scipy and scikit-learn). Each step is a separate process; CPU-s of the whole process.
FLOOR_STEPS = {
    "python": "pass",
    "import torch, transformers": "import torch, transformers",
    "+ model and tokenizer load": "import torch, transformers\n"
                                  "transformers.AutoModelForCausalLM.from_pretrained(MODEL)\n"
                                  "transformers.AutoTokenizer.from_pretrained(MODEL)",
    "+ import rouge_score": "import torch, transformers\n"
                            "transformers.AutoModelForCausalLM.from_pretrained(MODEL)\n"
                            "transformers.AutoTokenizer.from_pretrained(MODEL)\n"
                            "import rouge_score.rouge_scorer",
}


def process_cpu(argv: list[str], env: dict, cwd: str) -> tuple[float, float, str]:
    """CPU-seconds (user + sys, every thread) and wall seconds of one child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} failed:\n{proc.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall, proc.stdout


PEER_WHOLE_CPU_S = 11.1  # PEER_NOTE's figure


def profile_stages(args) -> None:
    """Whole `llmkit eval` processes, per-stage and total CPU-seconds and wall seconds (see the module docstring);
    the last line printed is one JSON object with the CPU-seconds."""
    from llmkit.tiny import resolve_model_path

    model = resolve_model_path(args.model) if args.model.startswith("tiny:") else args.model
    codes = {"this checkout": str(Path(__file__).resolve().parents[2])}
    if args.code:
        codes["--code " + args.code] = str(Path(args.code).resolve())
    runs: dict[str, list[dict]] = {label: [] for label in codes}
    floors: dict[str, list[float]] = {step: [] for step in FLOOR_STEPS}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeat):
            for label, root in codes.items():  # interleaved, so load on the machine hits both alike
                env = {**os.environ, "PYTHONPATH": root}
                suite = Path(root) / "eval" / f"tofu_{args.forget_split}.yaml"  # each checkout's own suite keys
                argv = [sys.executable, "-c", STAGE_RUNNER, str(suite), "--model", model, "--out", out, "--force",
                        "--backend", "hf", "--dataset", "tofu-mini", "--batch_size", str(args.batch_size),
                        "--max_new_tokens", str(args.max_new_tokens)]
                cpu, wall, stdout = process_cpu(argv, env, root)
                stages = json.loads(next(line for line in stdout.splitlines() if line.startswith("STAGES "))[7:])
                inside = [sum(v[i] for v in stages.values()) for i in (0, 1)]
                stages = {"interpreter start and exit": [cpu - inside[0], wall - inside[1]], **stages}
                runs[label].append({"stages": stages, "total": [cpu, wall]})
            for step, code in FLOOR_STEPS.items():
                floors[step].append(process_cpu([sys.executable, "-c", f"MODEL = {model!r}\n{code}"], dict(os.environ),
                                                str(Path(__file__).resolve().parents[2]))[0])
    order = ["interpreter start and exit", "imports", "model load", "data load", "scoring", "generation",
             "metrics and writing"]
    best = {label: {stage: [min(r["stages"][stage][i] for r in rs) for i in (0, 1)] for stage in order}
            | {"whole process": [min(r["total"][i] for r in rs) for i in (0, 1)]} for label, rs in runs.items()}
    for label in best:  # what follows the model load, as the second target counts it (data load included)
        after_load = [min(sum(r["stages"][s][i] for s in order[3:]) for r in runs[label]) for i in (0, 1)]
        best[label]["after model load"] = after_load
    print(f"llmkit eval tofu_{args.forget_split} on tofu-mini, model {args.model}, batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"minimum of {args.repeat} interleaved runs")
    labels = list(best)
    print("| stage | " + " | ".join(f"{label} CPU s | wall s" for label in labels) + " |")
    print("|---|" + "---:|---:|" * len(labels))
    for stage in [*order, "after model load", "whole process"]:
        print(f"| {stage} | " + " | ".join(f"{best[lb][stage][0]:.2f} | {best[lb][stage][1]:.2f}" for lb in labels) + " |")
    floor = {step: min(values) for step, values in floors.items()}
    print("floor of any evaluator on these libraries (separate processes, CPU s, minimum): "
          + ", ".join(f"{step} {value:.2f}" for step, value in floor.items()))
    print(PEER_NOTE)
    ours = best["this checkout"]
    line = {"cpu_s": {stage: round(ours[stage][0], 2) for stage in [*order, "after model load", "whole process"]},
            "floor_cpu_s": {step: round(value, 2) for step, value in floor.items()},
            "peer_whole_process_cpu_s": PEER_WHOLE_CPU_S,
            "peer_over_llmkit_whole_process": round(PEER_WHOLE_CPU_S / ours["whole process"][0], 2),
            "repeat": args.repeat}
    if args.code:
        line["cpu_s_code"] = {stage: round(best["--code " + args.code][stage][0], 2)
                              for stage in [*order, "after model load", "whole process"]}
    if args.out:
        from llmkit.io import write_json

        write_json(args.out, {"args": vars(args), "best": best, "runs": runs, "floors": floors, "peer": PEER_NOTE})
    print(json.dumps(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--forget_split", default="forget10")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="timed repeats; the minimum is reported")
    parser.add_argument("--generate_only", action="store_true", help="only time generation; print one JSON line")
    parser.add_argument("--out", help="also write the figures as JSON")
    parser.add_argument("--stages", action="store_true", help="profile whole llmkit eval processes per stage")
    parser.add_argument("--code", help="--stages: also profile this llmkit checkout, interleaved")
    args = parser.parse_args()
    if args.stages:
        profile_stages(args)
        return

    from llmkit.data import QADataArgs, prompt_text
    from llmkit.evals.cli import load_model
    from llmkit.evals.generate import HFGenerator
    from llmkit.evals.tofu import SPLITS, TofuSuiteArgs, load_tofu_splits
    from llmkit.tiny import resolve_model_path

    model_path = resolve_model_path(args.model) if args.model.startswith("tiny:") else args.model
    model, tokenizer = load_model(model_path)
    qa = QADataArgs(dataset="tofu-mini")
    splits = load_tofu_splits(TofuSuiteArgs(forget_split=args.forget_split), qa)
    groups = {}
    for name, rows in splits.items():
        prompts = [prompt_text(tokenizer, r[qa.question_key], qa) for r in rows]
        groups[name] = (prompts, text_groups(rows, prompts, SPLITS[name][1], qa.answer_key))

    generator = HFGenerator(model, tokenizer, batch_size=args.batch_size)
    if args.generate_only:
        generation = time_generation(generator, tokenizer, groups, args.max_new_tokens)
        line = {"check": "hf_generate_throughput", "model": args.model, "device": str(model.device),
                "dtype": str(model.dtype).removeprefix("torch."), "batch_size": args.batch_size,
                "max_new_tokens": args.max_new_tokens, **generation}
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in line.items()}))
        if args.out:
            from llmkit.io import write_json

            write_json(args.out, line)
        return

    calls = {"n": 0}
    model.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))

    def llmkit_pass():
        return {name: answer_logprobs(model, tokenizer, g["answer"] + g["base"] + g["perturbed"], add_eos=True,
                                      add_special_tokens=False, batch_size=args.batch_size, desc=name)
                for name, (_, g) in groups.items()}

    def per_metric_pass():
        return {name: sum((plain_logprobs(model, tokenizer, g[k], args.batch_size) for k in ("answer", "base", "perturbed")), [])
                for name, (_, g) in groups.items()}

    def per_item_pass():
        return {name: plain_logprobs(model, tokenizer, g["answer"] + g["base"] + g["perturbed"], 1)
                for name, (_, g) in groups.items()}

    figures, results = {}, {}
    for label, fn in (("llmkit one pass", llmkit_pass), ("per-metric passes", per_metric_pass),
                      ("per-item loop", per_item_pass)):
        best = float("inf")
        for _ in range(args.repeat):
            calls["n"] = 0
            start = time.perf_counter()
            results[label] = fn()
            best = min(best, time.perf_counter() - start)
        figures[label] = {"seconds": best, "forward_passes": calls["n"]}
    reference = results["llmkit one pass"]
    for label in ("per-metric passes", "per-item loop"):
        diff = max(float(np.max(np.abs(a - b))) for name in reference for a, b in zip(reference[name], results[label][name], strict=True))
        figures[label]["max_abs_logprob_diff_vs_llmkit"] = diff

    timed = time_generation(generator, tokenizer, groups, args.max_new_tokens)
    generation = timed["seconds"]

    n_texts = {name: sum(len(v) for v in g.values()) for name, (_, g) in groups.items()}
    print(f"model {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params), tofu-mini "
          f"{args.forget_split}: {n_texts} scored texts per split, batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}, best of {args.repeat}")
    print(f"generation (shared by all evaluators, {args.max_new_tokens} new tokens): {generation:.2f} s, "
          f"{timed['new_tokens_per_s']:.0f} new tokens/s")
    base = figures["llmkit one pass"]
    print("| evaluator | scoring s | forward passes | scoring ratio | full suite s | full-suite ratio | max |dlogp| |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, f in figures.items():
        full, full_base = f["seconds"] + generation, base["seconds"] + generation
        diff = f.get("max_abs_logprob_diff_vs_llmkit")
        print(f"| {label} | {f['seconds']:.2f} | {f['forward_passes']} | {f['seconds'] / base['seconds']:.2f}x | "
              f"{full:.2f} | {full / full_base:.2f}x | {'–' if diff is None else f'{diff:.1e}'} |")
    if args.out:
        from llmkit.io import write_json

        write_json(args.out, {"args": vars(args), "n_texts": n_texts, "generation_seconds": generation,
                              "generation_new_tokens_per_s": timed["new_tokens_per_s"], **figures})


if __name__ == "__main__":
    main()
