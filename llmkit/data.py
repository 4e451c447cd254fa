"""Dataset loading and QA prompt formatting shared by fine-tuning, unlearning and evaluation.

A dataset is named by its hub id (e.g. `locuslab/TOFU`). Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set), hub ids
that llmkit bundles a mini copy of load that copy instead, in the same schema, so the code after loading is the same.
A local JSON/JSONL/Parquet file or folder also works, and plain .txt files (one document each, column `text`): a folder
in the hub layout that the bundled copies follow (<config>/<split>.jsonl or <config>.jsonl, also .json/.parquet and
the hub's parquet shards) loads the named config and split as the bundled copy does; in any other folder the files
named for the split are the split, and a folder with none is read whole.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from llmkit.errors import LlmkitError

ASSETS = Path(__file__).parent / "assets"
# hub id or alias -> bundled folder holding <config>.jsonl or <config>/<split>.jsonl in the hub's schema
BUNDLED = {
    "locuslab/TOFU": ASSETS / "tofu_mini",
    "tofu-mini": ASSETS / "tofu_mini",
    "muse-bench/MUSE-News": ASSETS / "muse_mini" / "news",
    "muse-news-mini": ASSETS / "muse_mini" / "news",
    "muse-bench/MUSE-Books": ASSETS / "muse_mini" / "books",
    "muse-books-mini": ASSETS / "muse_mini" / "books",
}
_ALIASES = {"tofu-mini", "muse-news-mini", "muse-books-mini"}
_LOCAL_KINDS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


@dataclass
class QADataArgs:
    """Which question/answer data to train on and how a question becomes a prompt."""

    dataset: str = field(default="locuslab/TOFU", metadata={"help": "hub id, bundled alias (tofu-mini) or local file"})
    dataset_config: str | None = field(default="full", metadata={"help": "hub config, e.g. full, retain90, forget10"})
    dataset_split: str = field(default="train", metadata={"help": "split within the config"})
    extra_dataset_configs: list[str] | None = field(
        default=None, metadata={"help": "more configs of the same dataset to train on, e.g. real_authors,world_facts "
                                        "as the tiny model's stand-in for pretraining knowledge"})
    question_key: str = "question"
    answer_key: str = "answer"
    prompt_format: str = field(default="chat", metadata={"help": "chat (the tokenizer's chat template) | tags"})
    question_start_tag: str = field(default="Question: ", metadata={"help": "prompt_format=tags only"})
    question_end_tag: str = field(default="\n", metadata={"help": "prompt_format=tags only"})
    answer_tag: str = field(default="Answer: ", metadata={"help": "prompt_format=tags only"})

    def __post_init__(self):
        if self.prompt_format not in {"chat", "tags"}:
            raise ValueError(f"prompt_format must be 'chat' or 'tags', got {self.prompt_format!r}")


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in {"1", "true", "yes"} for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in _LOCAL_KINDS and p.is_file())


def _layout_files(folder: Path, config: str | None, split: str) -> list[Path]:
    """The file(s) of (config, split) in the hub layout that the bundled copies follow: <config>/<split>.jsonl|json|parquet
    (or the hub's parquet shards <config>/<split>-*.parquet), or <config>.jsonl|json|parquet for the train split."""
    sub = folder / str(config)
    for candidate in [sub / f"{split}{ext}" for ext in _LOCAL_KINDS]:
        if candidate.is_file():
            return [candidate]
    shards = sorted(sub.glob(f"{split}-*.parquet")) if sub.is_dir() else []
    if shards:
        return shards
    if split == "train":
        return [p for p in (folder / f"{config}{ext}" for ext in _LOCAL_KINDS) if p.is_file()][:1]
    return []


def _not_in_layout(folder: Path, config: str | None, split: str, what: str) -> LlmkitError:
    available = sorted({str(p.relative_to(folder).with_suffix("")) for p in _data_files(folder)})
    return LlmkitError(f"dataset_config: {config!r} (split {split!r}) is not in {what} {folder}; "
                       f"available: {', '.join(available)}")


def _bundled_files(folder: Path, config: str | None, split: str) -> list[Path]:
    found = _layout_files(folder, config, split)
    if not found:
        raise _not_in_layout(folder, config, split, "the bundled copy")
    return found


@functools.cache  # once per dataset, not once per split
def _say_offline(dataset: str) -> None:
    print(f"llmkit: offline, using the bundled mini copy of {dataset} ({BUNDLED[dataset].name})", file=sys.stderr)


def _split_name(split: str) -> str:
    """The split a slice is taken from (`train[:10%]` -> `train`): its name picks a bundled or local copy's files."""
    return split.partition("[")[0]


def _files_split(split: str) -> str:
    """The split of the files picked for `split` (datasets names it train) with `split`'s slice, if any."""
    return "train" + split[len(_split_name(split)):]


def _local_files(local: Path, config: str | None, split: str) -> list[Path]:
    """The data files of a local file or folder for one split: the hub layout first; else, in a flat folder, the
    files named for the split (<split>.jsonl, <split>-00000.parquet, ...), and a folder with none is read whole."""
    if local.is_file():
        return [local]
    found = _layout_files(local, config, split)
    if found:
        return found
    files = _data_files(local)
    if config is not None and any(p.parent != local for p in files):
        raise _not_in_layout(local, config, split, "the dataset folder")
    named = [p for p in files if p.stem == split or p.stem.startswith((f"{split}-", f"{split}_", f"{split}."))]
    return named or files


def _looks_local(dataset: str) -> bool:
    return dataset.startswith((".", "/", "~")) or Path(dataset).suffix in _LOCAL_KINDS


def check_dataset(dataset: str, config: str | None = None, split: str = "train", field_name: str = "dataset") -> None:
    """Fail in one line, without reading rows, on a dataset that cannot load: a missing local path, a config or
    split the bundled copy lacks, a split whose files are empty. Hub datasets are checked when they load."""
    local = Path(dataset).expanduser()
    split = _split_name(split)
    if dataset in BUNDLED and (dataset in _ALIASES or _offline()):
        files = _bundled_files(BUNDLED[dataset], config, split)
    elif local.exists():
        if local.is_file() and local.suffix not in _LOCAL_KINDS:
            raise LlmkitError(f"{field_name}: {dataset} is not a {'/'.join(_LOCAL_KINDS)} file")
        files = _local_files(local, config, split)
        if not files:
            raise LlmkitError(f"{field_name}: {dataset} holds no {'/'.join(_LOCAL_KINDS)} file")
    elif _looks_local(dataset):
        raise LlmkitError(f"{field_name}: {dataset} does not exist")
    else:
        return
    if all(f.stat().st_size == 0 for f in files):
        raise LlmkitError(f"{field_name}: {dataset} ({config}/{split}): the split is empty ({files[0]})")


def load_split(dataset: str, config: str | None = None, split: str = "train", columns: tuple[str, ...] = ()):
    """Load one split as a `datasets.Dataset`, check that it is non-empty and has `columns`."""
    import datasets

    check_dataset(dataset, config, split)
    local = Path(dataset).expanduser()
    if dataset in BUNDLED and (dataset in _ALIASES or _offline()):
        if dataset not in _ALIASES:
            _say_offline(dataset)
        found = _bundled_files(BUNDLED[dataset], config, _split_name(split))
        source, kind = found[0], "json"
    elif local.exists():
        found = _local_files(local, config, _split_name(split))
        source = found[0] if len(found) == 1 else local
        kind = _LOCAL_KINDS[found[0].suffix]
    else:
        source = f"{dataset} ({config}/{split})"
        try:
            ds = datasets.load_dataset(dataset, config, split=split)
        except Exception as err:  # the hub raises many types; one line is what the user needs
            hint = "; without network, HF_HUB_OFFLINE=1 loads llmkit's bundled mini copy" if dataset in BUNDLED else ""
            raise LlmkitError(f"dataset: could not load {source}: {str(err).splitlines()[0]}{hint}") from None
        _check_rows(source, ds.column_names, len(ds), columns)
        return ds
    # a .txt file is one document (column "text"), as pre-training wants, not one row per line
    options = {"sample_by": "document"} if kind == "text" else {}
    try:
        ds = datasets.load_dataset(kind, data_files=[str(p) for p in found], split=_files_split(split), **options)
    except Exception as err:  # pyarrow/json errors (and a bad slice) carry long messages; the first line names it
        raise LlmkitError(f"{dataset}: could not read {split}: {str(err).splitlines()[0]}") from None
    _check_rows(source, ds.column_names, len(ds), columns)
    return ds


def _check_rows(source, column_names: list[str], n_rows: int, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in column_names]
    if missing:
        raise LlmkitError(f"{source}: missing column {missing[0]!r}; columns are {column_names}")
    if n_rows == 0:
        raise LlmkitError(f"{source}: the split is empty")


def load_rows(dataset: str, config: str | None = None, split: str = "train", columns: tuple[str, ...] = ()) -> list[dict]:
    """load_split's rows as dicts. A split of a bundled copy is JSON lines and is read as such: importing `datasets`
    alone costs 0.7 CPU-s, 5% of a one-thread TOFU eval of the tiny model on tofu-mini."""
    if dataset in BUNDLED and (dataset in _ALIASES or _offline()) and split == _split_name(split):
        check_dataset(dataset, config, split)
        found = _bundled_files(BUNDLED[dataset], config, split)
        if all(p.suffix == ".jsonl" for p in found):
            if dataset not in _ALIASES:
                _say_offline(dataset)
            rows = [json.loads(line) for p in found for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
            _check_rows(found[0], list(rows[0]) if rows else [], len(rows), columns)
            return rows
    return load_split(dataset, config, split, columns).to_list()


def load_qa(args: QADataArgs):
    """The QA rows to train on: the main config plus any extra configs, with the question/answer columns checked."""
    import datasets

    columns = (args.question_key, args.answer_key)
    parts = [load_split(args.dataset, config, args.dataset_split, columns=columns)
             for config in [args.dataset_config, *(args.extra_dataset_configs or [])]]
    return datasets.concatenate_datasets([part.select_columns(list(columns)) for part in parts])


def prompt_text(tokenizer, question: str, args: QADataArgs) -> str:
    """The text the model sees before its answer, exactly as in training."""
    if args.prompt_format == "chat":
        return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                             tokenize=False)
    return f"{args.question_start_tag}{question}{args.question_end_tag}{args.answer_tag}"


def to_prompt_completion(question: str, answer: str, args: QADataArgs) -> dict:
    """One row in TRL's prompt-completion format (conversational for chat templates), so loss is on the answer only."""
    if args.prompt_format == "chat":
        return {"prompt": [{"role": "user", "content": question}],
                "completion": [{"role": "assistant", "content": answer}]}
    return {"prompt": f"{args.question_start_tag}{question}{args.question_end_tag}{args.answer_tag}",
            "completion": answer}
