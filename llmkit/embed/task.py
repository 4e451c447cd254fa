"""`task: embed` for `llmkit train`: mined rows -> prompted task datasets -> decoder embedder (+LoRA) -> final/.

One recipe drives both stages: `llmkit mine RECIPE` writes the mined dataset to `mined_dir` once, on one
process; training only loads it (and refuses a cache made from other mining settings), so no rank waits on
mining. Stands on sentence-transformers' trainer (one task per batch from a dict of datasets) through
llmkit.embed.train, and on llmkit.train's Session for metrics.jsonl, checkpoints, resume and final/.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from sentence_transformers import SentenceTransformerTrainingArguments
from transformers import TrainerCallback

from llmkit.embed.losses import LOSSES
from llmkit.embed.mining import MiningArgs
from llmkit.embed.model import ATTENTION, POOLING
from llmkit.errors import choice
from llmkit.models import ModelArgs

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EmbedArgs:
    """What the embedding task adds to the model, mining and trainer options."""

    task_prompts: str = field(default="", metadata={"help": "JSON {task: {instruction, symmetric?, in_batch_negatives?}}"})
    mined_dir: str = field(default="", metadata={"help": "where `llmkit mine` caches the mined dataset (default <run>/mined)"})
    pooling: str = field(default="eos", metadata={"help": "eos | mean"})
    attention: str = field(default="causal", metadata={"help": "causal | bidirectional"})
    max_seq_length: int = field(default=512, metadata={"help": "tokens per input, the EOS included"})
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


def mined_dir(embed_args: EmbedArgs, train_args) -> Path:
    """Where the recipe's mined dataset lives: `mined_dir`, else <run>/mined."""
    return Path(embed_args.mined_dir or Path(train_args.output_dir) / "mined")


class MergeLoraAtTrainEnd(TrainerCallback):
    """Folds the LoRA adapter into the backbone when training ends, so final/ holds plain weights.

    The shared save_final merges a causal-LM adapter directory, which would drop the sentence-transformers
    modules; merging the model in memory before it is saved keeps them.
    """

    def on_train_end(self, args, state, control, model=None, **kwargs):
        from llmkit.embed.model import merge_lora

        merge_lora(model)
        return control


def train(run, model_args: ModelArgs, mining_args: MiningArgs, embed_args: EmbedArgs,
          train_args: SentenceTransformerTrainingArguments, session) -> None:
    """config → data → model → trainer → train → save."""
    from llmkit.embed.mining import load_mined
    from llmkit.embed.model import build_embedder, embedding_lora
    from llmkit.embed.prompts import load_task_prompts
    from llmkit.embed.train import build_losses, build_trainer, prepare_datasets

    # data: mined once by `llmkit mine`, before launch
    mined = load_mined(mining_inputs(mining_args), mined_dir(embed_args, train_args), session.recipe_path)
    tasks = load_task_prompts(bundled(embed_args.task_prompts))
    # model
    lora = embedding_lora(model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                          model_args.lora_target_modules or "all-linear") if model_args.use_peft else None
    model = build_embedder(model_args.model_name_or_path, pooling=embed_args.pooling, attention=embed_args.attention,
                           max_seq_length=embed_args.max_seq_length, lora=lora, dtype=model_args.dtype)
    tokenizer = model[0].tokenizer
    datasets = prepare_datasets(mined, tasks, tokenizer, seed=train_args.seed, instructions=embed_args.instructions,
                                k_max=embed_args.icl_max_examples,
                                example_budget=embed_args.icl_budget, example_max_tokens=embed_args.icl_example_max_tokens)
    loss_kwargs = dict(temperature=embed_args.temperature, kd_weight=embed_args.kd_weight,
                       teacher_temperature=embed_args.teacher_temperature,
                       mask_false_negatives=embed_args.mask_false_negatives)
    if embed_args.loss == "cached_soft_infonce":
        loss_kwargs["mini_batch_size"] = embed_args.mini_batch_size
    losses = build_losses(model, tasks, datasets, embed_args.loss, **loss_kwargs)
    # trainer
    callbacks = session.callbacks() + ([MergeLoraAtTrainEnd()] if lora is not None and model_args.merge_lora else [])
    trainer = build_trainer(model, datasets, losses, train_args, callbacks)
    # train → save (final/ is a sentence-transformers folder: SentenceTransformer(final) loads it)
    session.train(trainer, tokenizer, merge_lora=False)
