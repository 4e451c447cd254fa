"""muse-mini: MUSE's schema, sizes, determinism, and QA/VerbMem actually drawn from the right documents."""

import json
import re
from pathlib import Path

import faker
import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "llmkit" / "assets" / "muse_mini"
SCHEMA = {  # config: {split: (columns, rows)}, as on the hub's muse-bench/MUSE-{News,Books}, scaled down
    "raw": {s: (["text"], 30) for s in ("forget", "retain1", "retain2", "holdout")},
    "verbmem": {"forget": (["prompt", "gt"], 20)},
    "knowmem": {"forget_qa": (["question", "answer"], 20), "retain_qa": (["question", "answer"], 20),
                "forget_qa_icl": (["question", "answer"], 10), "retain_qa_icl": (["question", "answer"], 10)},
    "privleak": {s: (["text"], 20) for s in ("forget", "retain", "holdout")},
}
QUESTION_WORDS = {"What", "Who", "How", "When", "Which", "In", "To"}


def muse_mini_script():
    return load_script("scripts/make_muse_mini.py")


def rows(corpus, config, split):
    with open(ASSETS / corpus / config / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def source_docs(question, answer, docs):
    """Documents that state the answer and name every capitalised entity word of the question."""
    names = {w.strip(",?.'") for w in question.split() if w[0].isupper()} - QUESTION_WORDS
    return [d for d in docs if answer in d and all(re.search(rf"\b{re.escape(n)}\b", d) for n in names)]


@pytest.mark.parametrize("corpus", ["news", "books"])
def test_schema_and_sizes(corpus):
    files = {p.relative_to(ASSETS / corpus).as_posix() for p in (ASSETS / corpus).rglob("*.jsonl")}
    assert files == {f"{c}/{s}.jsonl" for c, splits in SCHEMA.items() for s in splits}
    for config, splits in SCHEMA.items():
        for split, (columns, n) in splits.items():
            data = rows(corpus, config, split)
            assert len(data) == n, (config, split)
            assert all(list(r) == columns and all(isinstance(v, str) and v.strip() for v in r.values()) for r in data)


@pytest.mark.parametrize("corpus", ["news", "books"])
def test_documents_are_150_to_300_words_and_splits_disjoint(corpus):
    texts = {s: [r["text"] for r in rows(corpus, "raw", s)] for s in SCHEMA["raw"]}
    assert all(150 <= len(t.split()) <= 300 for ts in texts.values() for t in ts)
    all_texts = [t for ts in texts.values() for t in ts]
    assert len(set(all_texts)) == len(all_texts)


@pytest.mark.parametrize("corpus", ["news", "books"])
def test_knowmem_answers_come_from_their_documents(corpus):
    forget = [r["text"] for r in rows(corpus, "raw", "forget")]
    retain2 = [r["text"] for r in rows(corpus, "raw", "retain2")]
    for split, own, other in [("forget_qa", forget, retain2), ("forget_qa_icl", forget, retain2),
                              ("retain_qa", retain2, forget), ("retain_qa_icl", retain2, forget)]:
        for qa in rows(corpus, "knowmem", split):
            assert len(source_docs(qa["question"], qa["answer"], own)) == 1, (split, qa)
            assert not source_docs(qa["question"], qa["answer"], other), (split, qa)
            assert qa["answer"] not in qa["question"]
    evaluated = {qa["question"] for s in ("forget_qa", "retain_qa") for qa in rows(corpus, "knowmem", s)}
    icl = {qa["question"] for s in ("forget_qa_icl", "retain_qa_icl") for qa in rows(corpus, "knowmem", s)}
    assert not evaluated & icl


@pytest.mark.parametrize("corpus", ["news", "books"])
def test_verbmem_and_privleak_come_from_the_right_splits(corpus):
    raw = {s: {r["text"] for r in rows(corpus, "raw", s)} for s in SCHEMA["raw"]}
    for item in rows(corpus, "verbmem", "forget"):
        assert item["prompt"] + " " + item["gt"] in raw["forget"]
        assert len(item["prompt"].split()) == 32 and len(item["gt"].split()) >= 100
    for split, source in [("forget", "forget"), ("retain", "retain1"), ("holdout", "holdout")]:
        assert {r["text"] for r in rows(corpus, "privleak", split)} <= raw[source]


def test_hub_loader_reads_the_schema():
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(ASSETS / "news" / "knowmem" / "forget_qa.jsonl"), split="train")
    assert ds.column_names == ["question", "answer"] and len(ds) == 20


def test_generator_is_deterministic_and_seed_dependent():
    script = muse_mini_script()
    assert script.build(0) == script.build(0)
    assert script.build(1)["news"]["raw"]["forget"] != script.build(0)["news"]["raw"]["forget"]


def test_committed_files_are_what_the_script_writes(tmp_path):
    manifest = json.loads((ASSETS / "MANIFEST.json").read_text())
    if manifest["faker"] != faker.VERSION:
        pytest.skip(f"assets were generated with faker {manifest['faker']}, this is {faker.VERSION}")
    muse_mini_script().write(tmp_path, seed=manifest["seed"])
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(ASSETS) for p in ASSETS.rglob("*") if p.is_file())
    assert all((tmp_path / p).read_bytes() == (ASSETS / p).read_bytes() for p in written)
