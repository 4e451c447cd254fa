"""MTEB for llmkit embedders: mteb 2.x runs the tasks, llmkit supplies the prompts, the tasks offline and the summary.

`llmkit eval eval/mteb_local.yaml --model RUN/final` (or eval/mteb_eng_v2.yaml online). Stands on mteb's runner
(`mteb.evaluate`), its task classes, metrics and result files (`ResultCache`: <out>/mteb/results/<model>/<revision>/
<Task>.json), and on sentence-transformers to load and encode. llmkit adds:
- `LlmkitEncoder`, mteb's encoder protocol around a SentenceTransformer. For a model trained by llmkit (its saved
  query prompt is in llmkit's form) it renders llmkit's inputs (llmkit.embed.prompts): `Instruct: {task}\\nQuery: {q}`
  with optional fixed in-context examples on the query side of retrieval/reranking and on both sides of
  symmetric task types, documents raw; any other model keeps its own stored prompts (`prompts: auto`);
- `mteb_benchmark: local`: six bundled tasks (llmkit/assets/mteb_mini, scripts/make_mteb_mini.py), one per task
  type, as mteb task subclasses that override `load_data` (no hub access);
- the summary: Mean(Task), Mean(TaskType) (each type's mean weighted equally, as the leaderboard does) and a
  per-type table beside the MTEB(eng, v2) anchor scores of ../shared/specs/embedding.md §4.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError
from llmkit.io import atomic_write_text, write_json

MINI = Path(__file__).resolve().parents[1] / "assets" / "mteb_mini"
# Retrieval-like types: the instruction goes on queries only; every other type is symmetric (both sides).
ASYMMETRIC_TYPES = {"Retrieval", "Reranking", "InstructionRetrieval", "InstructionReranking"}


def prompt_format(setting, model) -> str:
    """The suite's `prompts` setting -> how inputs are rendered: "llmkit", "own" or "none".

    auto (default): llmkit's instruction format only for a model trained with it (its saved query prompt is in
    that form, llmkit.embed.prompts.named_prompts); any other model keeps its own stored prompts, as mteb's
    default wrapper would (all-MiniLM-L6-v2 has none). llmkit / true: llmkit's format for any model.
    none / false: raw texts.
    """
    from llmkit.embed.prompts import is_instruction_prompt

    value = str(setting).lower()
    if value in {"llmkit", "true", "yes", "1", "on"}:
        return "llmkit"
    if value in {"none", "false", "no", "0", "off"}:
        return "none"
    if value != "auto":
        raise LlmkitError(f"prompts: unknown value {setting!r}; use auto, llmkit or none")
    own = getattr(model, "prompts", None) or {}
    return "llmkit" if is_instruction_prompt(own.get("query") or "") else "own"


class LlmkitEncoder:
    """mteb's EncoderProtocol for a SentenceTransformer: llmkit's instruction (+ example) inputs, the model's own
    stored prompts (resolved by mteb's key order, through `encode_query` / `encode_document`), or raw texts."""

    def __init__(self, model, name: str, revision: str, instructions: dict[str, str] | None = None,
                 examples_dir: str | Path | None = None, prompts="auto"):
        from mteb.models.abs_encoder import AbsEncoder
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        self.model = model
        self.instructions = instructions or {}
        self.examples_dir = Path(examples_dir) if examples_dir else None
        self.format = prompt_format(prompts, model)
        own = {k: v for k, v in (getattr(model, "prompts", None) or {}).items() if v is not None}
        self.own_prompts = AbsEncoder.validate_task_to_prompt_name(own, raise_for_invalid_keys=False)[0] or {}
        self.mteb_model_meta = ModelMeta.create_empty({
            "name": name, "revision": revision, "embed_dim": model.get_embedding_dimension(),
            "max_tokens": model.max_seq_length, "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": self.format != "none", "framework": ["Sentence Transformers", "PyTorch"]})

    def instruction(self, task_metadata, prompt_type) -> str:
        """The task's own instruction (suite file, then mteb metadata), else llmkit's default for its type."""
        prompt = self.instructions.get(task_metadata.name) or task_metadata.prompt
        if isinstance(prompt, dict):
            prompt = prompt.get(getattr(prompt_type, "value", "query")) or prompt.get("query")
        if not prompt:
            prompt = TYPE_INSTRUCTIONS.get(task_metadata.type, TYPE_INSTRUCTIONS["Retrieval"])
        return prompt

    def render(self, texts: list[str], task_metadata, prompt_type) -> list[str]:
        """Model inputs for one batch: instruction (+ examples) form, or raw text for retrieval documents."""
        from llmkit.embed.prompts import format_query, load_example_file

        is_document = getattr(prompt_type, "value", prompt_type) == "document"
        if self.format != "llmkit" or (task_metadata.type in ASYMMETRIC_TYPES and is_document):
            return list(texts)
        path = self.examples_dir / f"{task_metadata.name}.json" if self.examples_dir else None
        examples = load_example_file(path) if path is not None and path.is_file() else []
        instruction = self.instruction(task_metadata, prompt_type)
        return [format_query(instruction, text, examples) for text in texts]

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, batch_size: int = 32,
               **kwargs) -> np.ndarray:
        """Embed every text of mteb's DataLoader in one `encode` call; L2-normalised float32 rows in input order.

        One call, not one per DataLoader batch: sentence-transformers sorts a call's texts by length, so batches
        hold texts of similar length. Per input-order batch, padding to each batch's longest text made MTEB
        encoding 3-4x slower on CPU (scripts/bench/embed_encode.py).
        """
        texts = [text for batch in inputs for text in batch["text"]]
        options = dict(batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        if self.format == "own":
            from mteb.models.abs_encoder import get_prompt_name

            name = get_prompt_name(self.own_prompts, task_metadata, prompt_type) if self.own_prompts else None
            side = getattr(prompt_type, "value", prompt_type)
            encode = {"query": self.model.encode_query, "document": self.model.encode_document}.get(side, self.model.encode)
            return encode(texts, prompt=self.own_prompts.get(name) if name else None, **options).astype(np.float32)
        return self.model.encode(self.render(texts, task_metadata, prompt_type), **options).astype(np.float32)

    def similarity(self, a, b):
        import torch

        a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T

    def similarity_pairwise(self, a, b):
        import torch

        a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        return (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1)


def local_tasks(folder: str | Path = MINI) -> list:
    """The bundled mini tasks as mteb task objects, data read from `folder` (one JSON file per task)."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    folder = Path(folder)
    instructions = json.loads((folder / "instructions.json").read_text(encoding="utf-8"))

    def read(name: str) -> dict:
        path = folder / f"{name}.json"
        if not path.is_file():
            raise LlmkitError(f"local MTEB task {name}: {path} does not exist (run scripts/make_mteb_mini.py)")
        return json.loads(path.read_text(encoding="utf-8"))

    def meta(name: str, task_type: str, main_score: str):
        return TaskMetadata(
            name=name, type=task_type, main_score=main_score, prompt=instructions[name],
            description=f"llmkit bundled local {task_type} task (scripts/make_mteb_mini.py).",
            reference="https://example.org/llmkit-mteb-mini", dataset={"path": f"llmkit/{name}", "revision": "1"},
            category="t2t", eval_splits=["test"], eval_langs=["eng-Latn"], date=("2026-01-01", "2026-01-02"),
            dialect=["Written"], domains=[], task_subtypes=[], license="cc-by-4.0", annotations_creators="derived",
            modalities=["text"], sample_creation="created", bibtex_citation="")

    def retrieval_split(data: dict):
        return RetrievalSplitData(queries=Dataset.from_list(data["queries"]), corpus=Dataset.from_list(data["corpus"]),
                                  relevant_docs=data["relevant_docs"], top_ranked=data.get("top_ranked"))

    class LlmkitMiniRetrieval(AbsTaskRetrieval):
        metadata = meta("LlmkitMiniRetrieval", "Retrieval", "ndcg_at_10")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {"default": {"test": retrieval_split(read(self.metadata.name))}}
            self.data_loaded = True

    class LlmkitMiniReranking(AbsTaskRetrieval):
        metadata = meta("LlmkitMiniReranking", "Reranking", "map_at_1000")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {"default": {"test": retrieval_split(read(self.metadata.name))}}
            self.data_loaded = True

    class LlmkitMiniSTS(AbsTaskSTS):
        metadata = meta("LlmkitMiniSTS", "STS", "cosine_spearman")
        min_score, max_score = 0, 5

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict(read(self.metadata.name))})
            self.data_loaded = True

    class LlmkitMiniPairClassification(AbsTaskPairClassification):
        metadata = meta("LlmkitMiniPairClassification", "PairClassification", "max_ap")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict(read(self.metadata.name))})
            self.data_loaded = True

    class LlmkitMiniClassification(AbsTaskClassification):
        metadata = meta("LlmkitMiniClassification", "Classification", "accuracy")
        n_experiments = 3  # mteb's default 10 resamples the 5-per-label train split needlessly often

        def load_data(self, num_proc=None, **kwargs):
            data = read(self.metadata.name)
            self.dataset = DatasetDict({split: Dataset.from_dict(rows) for split, rows in data.items()})
            self.data_loaded = True

    class LlmkitMiniClustering(AbsTaskClustering):
        metadata = meta("LlmkitMiniClustering", "Clustering", "v_measure")
        max_fraction_of_documents_to_embed = None  # 72 sentences: embed them all
        n_clusters = 3

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict(read(self.metadata.name))})
            self.data_loaded = True

    return [LlmkitMiniRetrieval(), LlmkitMiniReranking(), LlmkitMiniSTS(), LlmkitMiniPairClassification(),
            LlmkitMiniClassification(), LlmkitMiniClustering()]


def select_tasks(benchmark: str, suite_path: str) -> list:
    """`local` -> the bundled tasks; an mteb benchmark name (needs the hub for its datasets) -> its tasks."""
    if benchmark == "local":
        return local_tasks()
    if _offline() or not hub_reachable():
        raise LlmkitError(f"{suite_path}: {benchmark} downloads its datasets from the Hugging Face Hub, which is "
                          f"unreachable (HF_HUB_OFFLINE is set, or {_hub_endpoint()} did not answer); run it online, "
                          "or use eval/mteb_local.yaml offline")
    import mteb

    try:
        return list(mteb.get_benchmark(benchmark).tasks)
    except KeyError as err:
        raise LlmkitError(f"{suite_path}: mteb_benchmark {benchmark!r} is not an mteb benchmark ({err})") from None


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 5.0) -> bool:
    """One short request to the hub (proxy settings honoured): any HTTP answer counts. Without it, the datasets
    library retries each download for minutes and ends in a long traceback."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(_hub_endpoint(), method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # the hub answered, even if not with 200
    except (urllib.error.URLError, OSError):
        return False
    return True


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in {"1", "true", "yes"} for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def load_embedder(model_path: str, suite: dict):
    """A saved sentence-transformers folder as is; a plain decoder LM (e.g. tiny:llama) wrapped as llmkit's embedder."""
    from llmkit.embed.mining import teacher_path

    path = teacher_path(model_path)
    if (Path(path) / "modules.json").is_file():
        import torch
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")
    from llmkit.embed.model import build_embedder

    return build_embedder(path, pooling=str(suite.get("pooling", "eos")), attention=str(suite.get("attention", "causal")),
                          max_seq_length=int(suite.get("max_seq_length", 512)))


def summarize(scores: dict[str, tuple[str, float]]) -> dict:
    """{task: (type, main score in [0,1])} -> Mean(Task), Mean(TaskType) and per-type means, all ×100."""
    by_type: dict[str, list[float]] = {}
    for task_type, score in scores.values():
        by_type.setdefault(task_type, []).append(100 * score)
    type_means = {t: float(np.mean(v)) for t, v in sorted(by_type.items())}
    return {"mean_task": float(np.mean([100 * s for _, s in scores.values()])),
            "mean_task_type": float(np.mean(list(type_means.values()))), "per_type": type_means}


def summary_markdown(suite_name: str, model: str, scores: dict, summary: dict, comparable: bool) -> str:
    """Per-task scores, then the per-type table beside the anchor models."""
    lines = [f"# {suite_name}: {model}", "", "| task | type | main score ×100 |", "|---|---|---|"]
    lines += [f"| {task} | {t} | {100 * s:.2f} |" for task, (t, s) in scores.items()]
    types = list(summary["per_type"])
    lines += ["", "| model | Mean(Task) | Mean(TaskType) | " + " | ".join(types) + " |",
              "|---" * (3 + len(types)) + "|",
              f"| **this model** | {summary['mean_task']:.2f} | {summary['mean_task_type']:.2f} | "
              + " | ".join(f"{summary['per_type'][t]:.2f}" for t in types) + " |"]
    for name, anchor in ANCHORS.items():
        lines.append(f"| {name} | {anchor['mean_task']:.2f} | {anchor['mean_task_type']:.2f} | "
                     + " | ".join(f"{anchor[t]:.2f}" if t in anchor else "–" for t in types) + " |")
    if not comparable:
        lines += ["", "Anchors are MTEB(eng, v2) scores (41 tasks); this suite's tasks are different, so the rows "
                      "are not comparable: they show the scale, not a ranking."]
    return "\n".join(lines)


def run_mteb(suite: dict, overrides: dict, suite_path: str, model_path: str, out_dir: Path, force: bool) -> int:
    """Run one MTEB suite on an embedder; mteb's result files + <suite>_summary.json/.md under `out_dir`."""
    import mteb

    from llmkit.evals.cli import fingerprint

    config = {**suite, **overrides}
    suite_name = Path(suite_path).stem
    benchmark = str(config.get("mteb_benchmark", "local"))
    tasks = select_tasks(benchmark, suite_path)
    examples_dir = _bundled(str(config.get("examples_dir") or ""))
    key = fingerprint(model_path, suite, overrides, None)
    batch_size = _positive_int(config.get("batch_size", 32), "batch_size", suite_path)

    start = time.time()
    model = load_embedder(model_path, config)
    name = "llmkit/" + "__".join(Path(model_path).parts[-2:]) if Path(model_path).exists() else model_path
    encoder = LlmkitEncoder(model, name=name, revision=key, examples_dir=examples_dir,
                            prompts=config.get("prompts", "auto"))
    print(f"llmkit eval: inputs {DESCRIBE_FORMAT[encoder.format]}", file=sys.stderr)
    result = mteb.evaluate(encoder, tasks, cache=mteb.ResultCache(out_dir / "mteb"),
                           overwrite_strategy="always" if force else "only-missing",
                           encode_kwargs={"batch_size": batch_size}, show_progress_bar=False)
    types = {t.metadata.name: t.metadata.type for t in tasks}
    scores = {r.task_name: (types[r.task_name], float(r.get_score())) for r in result.task_results}
    missing = sorted(set(types) - set(scores))
    if missing:
        raise LlmkitError(f"{suite_path}: mteb returned no score for {', '.join(missing)}")
    summary = summarize(scores)
    info = {"suite": suite_name, "benchmark": "mteb", "mteb_benchmark": benchmark, "model": model_path,
            "mteb_model_name": name, "mteb_revision": key, "results_dir": str(out_dir / "mteb" / "results"),
            "seconds": round(time.time() - start, 1), "config": config}
    write_json(out_dir / f"{suite_name}_summary.json",
               {**info, **summary, "scores": {t: s for t, (_, s) in scores.items()}, "types": types,
                "anchors": ANCHORS, "anchors_comparable": benchmark == "MTEB(eng, v2)"})
    table = summary_markdown(suite_name, model_path, scores, summary, benchmark == "MTEB(eng, v2)")
    atomic_write_text(out_dir / f"{suite_name}_summary.md", table + "\n")
    print(table)
    print(f"llmkit eval: wrote {out_dir / 'mteb'} and {suite_name}_summary.json ({info['seconds']} s)", file=sys.stderr)
    return 0


def _bundled(path: str) -> str:
    from llmkit.embed.task import bundled

    return bundled(path)


def _positive_int(value, key: str, suite_path: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number <= 0:
        raise LlmkitError(f"{suite_path}: {key} must be a positive integer, got {str(value)!r}")
    return number


DESCRIBE_FORMAT = {"llmkit": "in llmkit's instruction format (Instruct: ...\\nQuery: ..., + fixed examples)",
                   "own": "with the model's own stored prompts (mteb's key order)", "none": "raw, no prompt"}


# Instructions for tasks that have none of their own (mteb metadata `prompt`, or the suite's file); E5-style.
TYPE_INSTRUCTIONS = {
    "Retrieval": "Given a query, retrieve relevant documents that answer the query",
    "Reranking": "Given a query, rank the documents by how well they answer it",
    "STS": "Retrieve semantically similar text",
    "PairClassification": "Retrieve text that is semantically similar to the given text",
    "Classification": "Classify the given text into its category",
    "Clustering": "Identify the topic or theme of the given text",
    "Summarization": "Given a news summary, retrieve other semantically similar summaries",
}

# MTEB(eng, v2), 41 tasks, main score ×100: ../shared/specs/embedding.md §4, recomputed there from
# embeddings-benchmark/results @ f4cc6c8b.
ANCHORS = {
    "Qwen/Qwen3-Embedding-8B": dict(mean_task=75.23, mean_task_type=68.71, Classification=90.43, Clustering=58.57,
                                    PairClassification=87.52, Reranking=51.56, Retrieval=69.44, STS=88.58, Summarization=34.83),
    "annamodels/LGAI-Embedding-Preview": dict(mean_task=74.12, mean_task_type=68.40, Classification=89.97, Clustering=59.25,
                                              PairClassification=88.67, Reranking=49.13, Retrieval=66.18, STS=86.69,
                                              Summarization=38.93),
    "Salesforce/SFR-Embedding-Mistral": dict(mean_task=69.31, mean_task_type=64.94, Classification=80.47, Clustering=54.93,
                                             PairClassification=88.59, Reranking=50.15, Retrieval=59.33, STS=84.77,
                                             Summarization=36.32),
    "intfloat/e5-mistral-7b-instruct": dict(mean_task=67.97, mean_task_type=64.00, Classification=79.85, Clustering=51.44,
                                            PairClassification=88.42, Reranking=49.78, Retrieval=57.62, STS=84.32,
                                            Summarization=36.57),
    "BAAI/bge-small-en-v1.5": dict(mean_task=64.30, mean_task_type=59.93, Classification=76.56, Clustering=47.02,
                                   PairClassification=84.95, Reranking=46.94, Retrieval=53.86, STS=81.28, Summarization=28.92),
    "sentence-transformers/all-MiniLM-L6-v2": dict(mean_task=59.03, mean_task_type=55.93, Classification=69.25,
                                                   Clustering=44.90, PairClassification=82.37, Reranking=47.14,
                                                   Retrieval=42.92, STS=78.95, Summarization=25.96),
}
