"""The unlearning step (`task: unlearn`): FLAT or a baseline on a forget set (TOFU QA or MUSE raw text).

Only the data a loss `needs` is loaded: FLAT reads the forget split and template answers, never a retain split,
and no loss loads a second model (the reference log-probs of NPO and IdkDPO come from the starting model; RMU
copies the starting model's first layers in memory, see trainer.py).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from transformers import set_seed

from llmkit.data import QADataArgs, load_split, prompt_text
from llmkit.models import ModelArgs, load_causal_lm, load_tokenizer
from llmkit.unlearn.data import Example, UnlearnCollator, UnlearnDataset, qa_examples, report, text_windows
from llmkit.errors import LlmkitError
from llmkit.unlearn.losses import DIVERGENCES, LOSSES, REDUCTIONS, REFERENCE_PADDED_LENGTH, get_loss, require_known
from llmkit.unlearn.templates import GENERATE, IDK_PROMPT, load_templates
from llmkit.unlearn.trainer import UnlearnTrainer, UnlearnTrainingArguments

# Loss hyperparameters a recipe may set; each is passed only to losses whose signature takes it.
HYPERPARAMETERS = ("divergence", "reduction", "padded_length", "beta", "alpha", "gamma", "delta", "steering_coeff")


@dataclass
class UnlearnArgs:
    """What to unlearn, with which loss, and where template and retain data come from.

    The forget set is QADataArgs' dataset/dataset_config/dataset_split (TOFU: config forget10; MUSE: config raw,
    split forget)."""

    loss: str = field(default="flat", metadata={"help": "a LOSSES name: flat, grad_ascent, grad_diff, npo, ..."})
    divergence: str | None = field(default=None, metadata={"help": "flat: kl | js | tv | pearson (| jeffrey)"})
    reduction: str | None = field(default=None, metadata={"help": "flat: paper | reference"})
    padded_length: int | None = field(default=None, metadata={
        "help": "flat reduction=reference: the length L the released code pads to (default 500, TOFU's)"})
    beta: float | None = field(default=None, metadata={"help": "npo / simnpo temperature"})
    alpha: float | None = field(default=None, metadata={"help": "weight of the retain NLL"})
    gamma: float | None = field(default=None, metadata={"help": "weight of the forget term"})
    delta: float | None = field(default=None, metadata={"help": "simnpo margin"})
    steering_coeff: float | None = field(default=None, metadata={"help": "rmu: length of the random target vector"})
    layer: int | None = field(default=None, metadata={
        "help": "rmu: the decoder layer (0-based) whose output is steered; WMDP and open-unlearning use 7"})
    trainable_params: str | None = field(default=None, metadata={
        "help": "regex (full match) of the parameter names to train, the rest frozen; default: all"})
    data_format: str = field(default="qa", metadata={"help": "qa (question/answer rows) | text (raw corpus)"})
    text_key: str = field(default="text", metadata={"help": "data_format=text: the text column"})
    text_prompt_tokens: int = field(
        default=0, metadata={"help": "data_format=text: leading window tokens kept as context (no loss), and "
                                     "the context the template continues"})
    template_source: str = field(default="idk", metadata={
        "help": "idk | copyright | PATH (one template per line) | OWNER/NAME[:FILE] (a hub dataset's .txt/.jsonl line "
                "files, e.g. open-unlearning/idk, TOFU's refusal list) | generate (a model refuses each forget question)"})
    template_model: str | None = field(default=None, metadata={
        "help": "template_source=generate: the model that writes the refusals (default: the model being unlearned)"})
    template_prompt: str = field(default=IDK_PROMPT, metadata={
        "help": "template_source=generate: the request, with {question} for the forget question"})
    retain_dataset: str | None = field(default=None, metadata={"help": "default: the forget dataset"})
    retain_config: str | None = field(default=None, metadata={"help": "e.g. retain90 (TOFU) or raw (MUSE)"})
    retain_split: str = field(default="train", metadata={"help": "e.g. train (TOFU) or retain1 (MUSE)"})
    max_length: int = field(default=512, metadata={"help": "tokens per sequence; longer answers are truncated"})

    def __post_init__(self):
        try:  # word-valued fields are checked here, before the run directory exists, not at the first step
            get_loss(self.loss)
            for key, known in (("divergence", DIVERGENCES), ("reduction", REDUCTIONS)):
                if getattr(self, key) is not None:
                    require_known(key, getattr(self, key), known)
        except LlmkitError as err:  # build_args prefixes ValueErrors with the recipe file
            raise ValueError(str(err)) from None
        if self.data_format not in {"qa", "text"}:
            raise ValueError(f"data_format must be 'qa' or 'text', got {self.data_format!r}")
        accepted = loss_keywords(self.loss)
        unused = [k for k in HYPERPARAMETERS if getattr(self, k) is not None and k not in accepted]
        if unused:
            raise ValueError(f"{unused[0]} is not a parameter of loss {self.loss!r} (it takes {', '.join(accepted) or 'none'})")
        if "retain" in LOSSES[self.loss].needs and not self.retain_config:
            raise ValueError(f"loss {self.loss!r} needs retain data: set retain_config")
        padded = self.padded_length or REFERENCE_PADDED_LENGTH
        if self.reduction == "reference" and self.max_length > padded:
            raise ValueError(f"padded_length: {padded} is shorter than max_length {self.max_length}; reduction "
                             "'reference' divides by the length the sequences are padded to")
        steers = "activations" in LOSSES[self.loss].needs
        if steers and self.layer is None:
            raise ValueError(f"loss {self.loss!r} needs layer: the decoder layer whose output it steers")
        if not steers and self.layer is not None:
            raise ValueError(f"layer is a parameter of rmu, not of loss {self.loss!r}")
        if self.trainable_params is not None:
            try:
                re.compile(self.trainable_params)
            except re.error as err:
                raise ValueError(f"trainable_params: {err}") from None

    def loss_kwargs(self) -> dict:
        """The hyperparameters set in the recipe; unset ones keep the loss function's defaults."""
        return {k: getattr(self, k) for k in HYPERPARAMETERS if getattr(self, k) is not None}


def loss_keywords(name: str) -> tuple[str, ...]:
    """Hyperparameters (keyword-only arguments) that LOSSES[name] takes."""
    params = inspect.signature(LOSSES[name].fn).parameters.values()
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name in HYPERPARAMETERS)


ARG_TYPES = (ModelArgs, QADataArgs, UnlearnArgs, UnlearnTrainingArguments)


def load_examples(tokenizer, data_args: QADataArgs, args: UnlearnArgs, dataset: str, config, split: str) -> list[Example]:
    """QA rows or text windows of one split."""
    if args.data_format == "text":
        rows = load_split(dataset, config, split, columns=(args.text_key,))
        windows = text_windows(tokenizer, list(rows[args.text_key]), args.max_length, args.text_prompt_tokens + 2)
        return [Example(window=w) for w in windows]
    rows = load_split(dataset, config, split, columns=(data_args.question_key, data_args.answer_key))
    return qa_examples(tokenizer, rows, data_args)


def freeze_except(model, pattern: str) -> None:
    """Train only the parameters whose names fully match `pattern` (RMU trains a few MLP matrices)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    chosen = {name for name in names if re.fullmatch(pattern, name)}
    if not chosen:
        raise LlmkitError(f"trainable_params: {pattern!r} matches no trainable parameter, e.g. {names[0]!r}")
    for name, p in model.named_parameters():
        p.requires_grad_(name in chosen)


def refusal_writer(model_path: str, data_args: QADataArgs):
    """generate_fn for template_source=generate: greedy, first line, through the evaluation's generation backend.

    Every rank runs it on its own full copy of the model (greedy, so all ranks get the same templates)."""
    from llmkit.evals.cli import load_model
    from llmkit.evals.generate import get_backend

    model, tokenizer = load_model(model_path)
    generate = get_backend("hf", model=model, tokenizer=tokenizer)

    def write(requests: list[str]) -> list[str]:
        prompts = [prompt_text(tokenizer, request, data_args) for request in requests]
        return generate(prompts, max_new_tokens=48, stop=("\n",))

    return write


def build_dataset(tokenizer, data_args: QADataArgs, args: UnlearnArgs, seed: int,
                  model_path: str | None = None) -> UnlearnDataset:
    """The forget set with exactly the streams the loss needs."""
    needs = LOSSES[args.loss].needs
    forget = load_examples(tokenizer, data_args, args, data_args.dataset, data_args.dataset_config,
                           data_args.dataset_split)
    templates = None
    if "template" in needs and args.template_source == GENERATE:
        questions = list(load_split(data_args.dataset, data_args.dataset_config, data_args.dataset_split,
                                    columns=(data_args.question_key,))[data_args.question_key])
        templates = load_templates(GENERATE, generate_fn=refusal_writer(args.template_model or model_path, data_args),
                                   questions=questions, prompt=args.template_prompt)
    elif "template" in needs:
        templates = load_templates(args.template_source)
    retain = None
    if "retain" in needs:
        retain = load_examples(tokenizer, data_args, args, args.retain_dataset or data_args.dataset,
                               args.retain_config, args.retain_split)
    dataset = UnlearnDataset(
        tokenizer, forget, needs, templates=templates, retain=retain, max_length=args.max_length,
        # chat-template text already carries the model's special tokens; tag prompts get BOS, as in evaluation
        add_special_tokens=data_args.prompt_format != "chat", text_prompt_tokens=args.text_prompt_tokens, seed=seed)
    report(dataset, f"{data_args.dataset} {data_args.dataset_config}/{data_args.dataset_split}")
    return dataset


def train(run, model_args: ModelArgs, data_args: QADataArgs, args: UnlearnArgs,
          train_args: UnlearnTrainingArguments, session) -> None:
    """config → data → model → trainer → train → save."""
    # data
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    dataset = build_dataset(tokenizer, data_args, args, seed=train_args.seed, model_path=model_args.model_name_or_path)
    # model: seeded first, since get_peft_model draws LoRA's A matrices before Trainer seeds anything
    set_seed(train_args.seed)
    model = load_causal_lm(model_args)
    if args.trainable_params is not None:
        freeze_except(model, args.trainable_params)
    # trainer
    trainer = UnlearnTrainer(model=model, args=train_args, train_dataset=dataset,
                             data_collator=UnlearnCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                             callbacks=session.callbacks(), loss_name=args.loss, loss_kwargs=args.loss_kwargs(),
                             layer=args.layer)
    # train → save
    session.train(trainer, tokenizer, merge_lora=model_args.merge_lora)
