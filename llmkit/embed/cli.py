"""`llmkit mine RECIPE [--key value ...]`: mine an embed recipe's hard negatives and teacher scores, once.

Takes the same recipe (and overrides) as `llmkit train`, runs on one process, and writes the recipe's
`mined_dir`: the mined dataset, then the prompted training datasets (llmkit.embed.prepared); training then only
loads them. Rerunning with unchanged settings and input files reuses the cache. `--num_processes N` runs the
dense teacher and a cross-encoder reranker with one process each per GPU. No training arguments are built:
they check the hardware (bf16 needs a GPU), and mining a GPU recipe on a CPU node must work.
"""

from __future__ import annotations

import sys

from llmkit.errors import LlmkitError


def teacher_devices(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Take `--num_processes N` out of argv: N processes per teacher (the dense teacher, and a cross-encoder
    reranker), one per GPU (cuda:0..N-1), or N CPU processes."""
    if "--num_processes" not in argv:
        return argv, None
    at = argv.index("--num_processes")
    value = argv[at + 1] if at + 1 < len(argv) else ""
    if not value.isdigit() or int(value) < 1:
        raise LlmkitError(f"--num_processes: {value or '(missing)'} is not a positive whole number")
    import torch

    n = int(value)
    if torch.cuda.is_available() and n > torch.cuda.device_count():
        raise LlmkitError(f"--num_processes {n}: only {torch.cuda.device_count()} GPU(s) are visible")
    devices = [f"cuda:{i}" for i in range(n)] if torch.cuda.is_available() else ["cpu"] * n
    return argv[:at] + argv[at + 2:], devices


def mine_main(argv: list[str]) -> int:
    """Entry point of `llmkit mine`."""
    from llmkit.config import RunArgs, build_args
    from llmkit.embed import task as embed_task
    from llmkit.embed.mining import mine
    from llmkit.embed.prompts import load_task_prompts
    from llmkit.model_files import check_model_path
    from llmkit.train import read_recipe

    if not argv or argv[0].startswith("-"):
        raise LlmkitError("usage: llmkit mine RECIPE.yaml [--num_processes N] [--key value ...]")
    argv, devices = teacher_devices(argv)
    module, recipe, overrides = read_recipe(argv[0], argv[1:])
    if module is not embed_task:
        raise LlmkitError(f"{argv[0]}: llmkit mine needs a recipe with task: embed")
    *arg_types, training_args = embed_task.ARG_TYPES
    _, model_args, mining_args, embed_args = build_args((RunArgs, *arg_types), recipe, overrides, argv[0],
                                                        not_built=(training_args,))
    # the student's tokenizer and the prompts file render the inputs after mining: a typo fails now, not after it
    load_task_prompts(embed_task.bundled(embed_args.task_prompts))
    check_model_path(model_args.model_name_or_path)
    out = embed_task.mined_dir(embed_args, {**recipe, **overrides}["output_dir"])
    print(f"llmkit mine: teacher {mining_args.teacher_model or '(none)'}, reranker {mining_args.reranker}"
          + (" (OFFLINE FALLBACK: the teacher's cosine stands in for a cross-encoder reranker)"
             if mining_args.reranker == "dense" else " (cross-encoder: its scores are the soft labels)"),
          file=sys.stderr)
    mined = mine(embed_task.mining_inputs(mining_args), out, devices=devices)
    print((out / "summary.txt").read_text(encoding="utf-8"), end="")
    print(f"llmkit mine: {len(mined)} rows in {out}")
    datasets = embed_task.prepare_training_data(mined, model_args, mining_args, embed_args, out)
    print(f"llmkit mine: training inputs rendered for {model_args.model_name_or_path} "
          f"({sum(len(d) for d in datasets.values())} rows, {', '.join(datasets)}) in {out / 'prepared'}")
    return 0
