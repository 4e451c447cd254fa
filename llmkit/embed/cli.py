"""`llmkit mine RECIPE [--key value ...]`: mine an embed recipe's hard negatives and teacher scores, once.

Takes the same recipe (and overrides) as `llmkit train`, runs on one process, and writes the recipe's
`mined_dir`; training then only loads it. Rerunning with unchanged settings and input files reuses the cache.
"""

from __future__ import annotations

import sys

from llmkit.errors import LlmkitError


def mine_main(argv: list[str]) -> int:
    """Entry point of `llmkit mine`."""
    from llmkit.embed import task as embed_task
    from llmkit.embed.mining import mine
    from llmkit.train import prepare

    if not argv or argv[0].startswith("-"):
        raise LlmkitError("usage: llmkit mine RECIPE.yaml [--key value ...]")
    module, instances = prepare(argv[0], argv[1:], world=1)
    if module is not embed_task:
        raise LlmkitError(f"{argv[0]}: llmkit mine needs a recipe with task: embed")
    _, _, mining_args, embed_args, train_args = instances
    out = embed_task.mined_dir(embed_args, train_args)
    print(f"llmkit mine: teacher {mining_args.teacher_model or '(none)'}, reranker {mining_args.reranker}"
          + (" (the teacher's cosine stands in for a cross-encoder)" if mining_args.reranker == "dense" else ""),
          file=sys.stderr)
    mined = mine(embed_task.mining_inputs(mining_args), out)
    print((out / "summary.txt").read_text(encoding="utf-8"), end="")
    print(f"llmkit mine: {len(mined)} rows in {out}")
    return 0
