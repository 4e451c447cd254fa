"""The TOFU fine-tune step (`task: finetune`): the target model (split `full`) and the retain-only reference
(`retain90/95/99`), trained with TRL's SFTTrainer on prompt-completion rows so the loss is on answer tokens only."""

from __future__ import annotations

from trl import SFTConfig

from llmkit.data import QADataArgs, load_qa, to_prompt_completion
from llmkit.models import ModelArgs, load_causal_lm, load_tokenizer, lora_config

ARG_TYPES = (ModelArgs, QADataArgs, SFTConfig)


def train(run, model_args: ModelArgs, data_args: QADataArgs, train_args: SFTConfig, session) -> None:
    """config → data → model → trainer → train → save."""
    from trl import SFTTrainer

    # data
    raw = load_qa(data_args)
    dataset = raw.map(lambda row: to_prompt_completion(row[data_args.question_key], row[data_args.answer_key], data_args),
                      remove_columns=raw.column_names)
    # model
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    model = load_causal_lm(model_args, with_lora=False)  # SFTTrainer wraps it with peft_config
    # trainer
    trainer = SFTTrainer(model=model, args=train_args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(model_args), callbacks=session.callbacks())
    # train → save
    session.train(trainer, tokenizer, merge_lora=model_args.merge_lora)
