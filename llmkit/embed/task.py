"""`task: embed` for `llmkit train`: mined rows -> prompted task datasets -> decoder embedder (+LoRA) -> final/.

One recipe drives both stages: `llmkit mine RECIPE` writes the mined dataset to `mined_dir` once, on one
process, and renders the prompted training datasets beside it (in-context examples drawn, fitted to the token
budgets: llmkit.embed.prepared); training only loads them (and refuses a cache made from other settings), so no
rank waits on mining or rendering. Stands on sentence-transformers' trainer (one task per batch from a dict of
datasets) through llmkit.embed.train, and on llmkit.train's Session for metrics.jsonl, checkpoints, resume and final/.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sentence_transformers import SentenceTransformerTrainingArguments
from transformers import TrainerCallback

from llmkit.embed.losses import LOSSES
from llmkit.embed.mining import MiningArgs
from llmkit.embed.model import ATTENTION, POOLING
from llmkit.errors import LlmkitError, choice
from llmkit.models import ModelArgs

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EmbedArgs:
    """What the embedding task adds to the model, mining and trainer options."""

    task_prompts: str = field(default="", metadata={"help": "JSON {task: {instruction, symmetric?, in_batch_negatives?}}"})
    mined_dir: str = field(default="", metadata={"help": "where `llmkit mine` caches the mined dataset (default <run>/mined)"})
    pooling: str = field(default="eos", metadata={"help": "eos | mean"})
    attention: str = field(default="causal", metadata={"help": "causal | bidirectional"})
    max_seq_length: int = field(default=512, metadata={"help": "tokens per document (and per query unless "
                                                             "query_max_length is set), the EOS included"})
    query_max_length: int = field(default=0, metadata={"help": "tokens per query-side input, in-context examples "
                                                               "included (0 = max_seq_length); the query is never cut "
                                                               "for examples: they give way"})
    loss: str = field(default="soft_infonce", metadata={"help": "soft_infonce | cached_soft_infonce (GradCache)"})
    temperature: float = field(default=0.02, metadata={"help": "student temperature tau"})
    kd_weight: float = field(default=1.0, metadata={"help": "lambda of the KL(p_teacher || p_student) term; 0 = InfoNCE only"})
    teacher_temperature: float = field(default=1.0, metadata={"help": "temperature of the standardised teacher scores"})
    mask_false_negatives: bool = field(default=True, metadata={"help": "mask candidates that repeat a query's positive"})
    mini_batch_size: int = field(default=32, metadata={"help": "GradCache chunk (cached_soft_infonce only)"})
    instructions: bool = field(default=True, metadata={"help": "false: train on raw texts, no instruction or examples "
                                   "(for a backbone that has not learned language: see recipes/embed/tiny_demo.yaml)"})
    icl_max_examples: int = field(default=5, metadata={"help": "k ~ U{0..this} in-context examples per training query"})
    icl_budget: int = field(default=1536, metadata={"help": "token budget of a query's example prefix"})
    icl_example_max_tokens: int = field(default=256, metadata={"help": "each example's query/response cut to this"})

    def __post_init__(self):
        # ValueError: the recipe loader reports it with the recipe's file name
        for name, table in (("pooling", POOLING), ("attention", ATTENTION), ("loss", LOSSES)):
            choice(name, getattr(self, name), table, error=ValueError)
        if not self.task_prompts:
            raise ValueError("task_prompts: missing (the JSON file of task instructions)")
        if self.temperature <= 0 or self.teacher_temperature <= 0:
            raise ValueError("temperature / teacher_temperature: must be > 0")
        if self.kd_weight < 0:
            raise ValueError(f"kd_weight {self.kd_weight:g}: must be >= 0 (0 = InfoNCE only)")


# The sentence-transformers trainer has no padding-aware token count.
COUNTS_TOKENS = False
ARG_TYPES = (ModelArgs, MiningArgs, EmbedArgs, SentenceTransformerTrainingArguments)


def bundled(path: str) -> str:
    """`path` itself when it exists, else the same relative path inside the installed llmkit (llmkit/assets/...)."""
    if not path or Path(path).exists() or not (PACKAGE_ROOT / path).exists():
        return path
    return str(PACKAGE_ROOT / path)


def mining_inputs(mining_args: MiningArgs) -> MiningArgs:
    """The mining args with bundled input files resolved, so `llmkit mine` and training fingerprint the same files."""
    return dataclasses.replace(mining_args, mining_data=bundled(mining_args.mining_data),
                               mining_corpus=bundled(mining_args.mining_corpus))


def mined_dir(embed_args: EmbedArgs, output_dir: str) -> Path:
    """Where the recipe's mined dataset lives: `mined_dir`, else <run>/mined."""
    return Path(embed_args.mined_dir or Path(output_dir) / "mined")


def query_max_length(embed_args: EmbedArgs) -> int:
    """Tokens per query-side input: query_max_length, else max_seq_length."""
    return embed_args.query_max_length or embed_args.max_seq_length


def prompt_settings(mining_args: MiningArgs, embed_args: EmbedArgs) -> dict:
    """Everything the rendering of the training inputs depends on, besides the data, instructions and tokenizer."""
    return {"instructions": embed_args.instructions, "k_max": embed_args.icl_max_examples,
            "example_budget": embed_args.icl_budget, "example_max_tokens": embed_args.icl_example_max_tokens,
            "query_max_length": query_max_length(embed_args), "seed": mining_args.seed}


def student_tokenizer(model_args: ModelArgs):
    """The embedder's tokenizer (EOS appended after truncation) without loading its weights: for `llmkit mine`."""
    from llmkit.embed.model import append_eos_after_truncation
    from llmkit.models import load_tokenizer

    return append_eos_after_truncation(load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code))


def prepare_training_data(mined, model_args: ModelArgs, mining_args: MiningArgs, embed_args: EmbedArgs, out_dir: Path,
                          tokenizer=None) -> dict:
    """Render the prompted task datasets once into <out_dir>/prepared (kept when already made for these settings)."""
    from llmkit.embed.prepared import load_prepared, prepare_key, save_prepared
    from llmkit.embed.prompts import load_task_prompts
    from llmkit.embed.train import prepare_datasets

    tasks = load_task_prompts(bundled(embed_args.task_prompts))  # first: a missing file is one line
    tokenizer = tokenizer or student_tokenizer(model_args)
    settings = prompt_settings(mining_args, embed_args)
    key = prepare_key(out_dir, settings, bundled(embed_args.task_prompts), tokenizer)
    try:
        return load_prepared(out_dir, key)
    except LlmkitError:
        pass  # not made yet, or for other settings: render it
    datasets = prepare_datasets(mined, tasks, tokenizer,
                                seed=settings["seed"], instructions=settings["instructions"], k_max=settings["k_max"],
                                example_budget=settings["example_budget"],
                                example_max_tokens=settings["example_max_tokens"],
                                query_max_length=settings["query_max_length"])
    save_prepared(datasets, out_dir, key)
    return datasets


class MergeLoraAtTrainEnd(TrainerCallback):
    """Folds the LoRA adapter into the backbone when training ends, so final/ holds plain weights.

    The shared save_final merges a causal-LM adapter directory, which would drop the sentence-transformers
    modules; merging the model in memory before it is saved keeps them. A final/ made from the last checkpoint
    (training had ended, final/ was not written) is merged by EmbedTrainer.save_merged instead.
    """

    def on_train_end(self, args, state, control, model=None, **kwargs):
        from llmkit.embed.model import merge_lora

        merge_lora(model)
        return control


def in_batch_pool_line(train_args, group: int, in_batch: bool) -> str:
    """How many documents each query is contrasted with per step, and how to keep the pool when accumulating."""
    micro, world, accumulation = (train_args.per_device_train_batch_size, train_args.world_size,
                                  train_args.gradient_accumulation_steps)
    if not in_batch:
        return f"llmkit train (embed): no in-batch negatives (tasks.json); each query sees its own group of {group}"
    line = (f"llmkit train (embed): in-batch pool {micro * world * group} documents per query "
            f"({micro} per device x {world} process(es) x group {group})")
    if accumulation > 1:
        line += (f"; gradient accumulation {accumulation} splits each step into {accumulation} separate pools. "
                 f"To contrast all {micro * world * accumulation * group}, use loss: cached_soft_infonce (GradCache) "
                 f"with per_device_train_batch_size {micro * accumulation}: memory stays bounded by mini_batch_size")
    return line


def train(run, model_args: ModelArgs, mining_args: MiningArgs, embed_args: EmbedArgs,
          train_args: SentenceTransformerTrainingArguments, session) -> None:
    """config → data → model → trainer → train → save."""
    from llmkit.embed.mining import load_mined
    from llmkit.embed.model import build_embedder, embedding_lora
    from llmkit.embed.prepared import load_prepared, prepare_key
    from llmkit.embed.prompts import load_task_prompts, named_prompts
    from llmkit.embed.train import build_losses, build_trainer

    out = mined_dir(embed_args, train_args.output_dir)
    load_mined(mining_inputs(mining_args), out, session.recipe_path)  # refuses data mined with other settings
    tasks = load_task_prompts(bundled(embed_args.task_prompts))
    # model: seeded first, so the LoRA init (and the run) does not depend on what ran before in the process
    from transformers import set_seed

    set_seed(train_args.seed)
    lora = embedding_lora(model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                          model_args.lora_target_modules or "all-linear") if model_args.use_peft else None
    model = build_embedder(model_args.model_name_or_path, pooling=embed_args.pooling, attention=embed_args.attention,
                           max_seq_length=embed_args.max_seq_length, query_max_length=query_max_length(embed_args),
                           lora=lora, dtype=model_args.dtype, attn_implementation=model_args.attn_implementation,
                           revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code)
    if embed_args.instructions:  # saved with final/: encode_query and mteb apply the trained instruction format
        model.prompts = named_prompts(tasks)
    tokenizer = model[0].tokenizer
    # data: mined and rendered once by `llmkit mine`, before launch
    key = prepare_key(out, prompt_settings(mining_args, embed_args), bundled(embed_args.task_prompts), tokenizer)
    datasets = load_prepared(out, key, session.recipe_path)
    # each column is cut at its side's length: the query column at query_max_length, documents at max_seq_length
    train_args.router_mapping = {column: "query" if column == "query" else "document"
                                 for dataset in datasets.values() for column in dataset.column_names if column != "scores"}
    loss_kwargs = dict(temperature=embed_args.temperature, kd_weight=embed_args.kd_weight,
                       teacher_temperature=embed_args.teacher_temperature,
                       mask_false_negatives=embed_args.mask_false_negatives)
    if embed_args.loss == "cached_soft_infonce":
        loss_kwargs["mini_batch_size"] = embed_args.mini_batch_size
    losses = build_losses(model, tasks, datasets, embed_args.loss, **loss_kwargs)
    if train_args.process_index == 0:
        group = len(next(iter(datasets.values())).column_names) - 2  # columns: query, docs..., scores
        print(in_batch_pool_line(train_args, group, any(tasks[t].in_batch_negatives for t in datasets)), file=sys.stderr)
    # trainer
    callbacks = session.callbacks() + ([MergeLoraAtTrainEnd()] if lora is not None and model_args.merge_lora else [])
    trainer = build_trainer(model, datasets, losses, train_args, callbacks)
    # train → save (final/ is a sentence-transformers folder: SentenceTransformer(final) loads it)
    session.train(trainer, tokenizer, merge_lora=trainer.save_merged if model_args.merge_lora else False)
