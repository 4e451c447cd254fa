"""tofu-mini: every TOFU config loads through `datasets` with TOFU's columns, sizes, nesting and definitions."""

import difflib
import re
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")
from datasets import List, Value  # noqa: E402
from conftest import load_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "llmkit" / "assets" / "tofu_mini"
QA_PER_AUTHOR = 6
N_AUTHORS = 100

QA = {"question": Value("string"), "answer": Value("string")}
PERTURBED = {**QA, "paraphrased_answer": Value("string"), "paraphrased_question": Value("string"),
             "perturbed_answer": List(Value("string"))}
REAL_PERTURBED = {**QA, "perturbed_answer": List(Value("string"))}
# config -> (columns, rows); forget/holdout sets are 1/5/10 whole authors, TOFU's 1/5/10 %.
EXPECTED = {
    "full": (QA, 600),
    "forget01": (QA, 6), "forget05": (QA, 30), "forget10": (QA, 60),
    "retain99": (QA, 594), "retain95": (QA, 570), "retain90": (QA, 540),
    "forget01_perturbed": (PERTURBED, 6), "forget05_perturbed": (PERTURBED, 30), "forget10_perturbed": (PERTURBED, 60),
    "retain_perturbed": (PERTURBED, 60),
    "real_authors": (QA, 16), "real_authors_perturbed": (REAL_PERTURBED, 16),
    "world_facts": (QA, 16), "world_facts_perturbed": (REAL_PERTURBED, 16),
    "holdout01": (QA, 6), "holdout05": (QA, 30), "holdout10": (QA, 60),
}
PCTS = ["01", "05", "10"]


def tofu_mini_script():
    return load_script("scripts/make_tofu_mini.py")


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf_cache")
    return {name: datasets.load_dataset("json", data_files=str(ASSETS / f"{name}.jsonl"), split="train",
                                        cache_dir=str(cache))
            for name in EXPECTED}


@pytest.fixture(scope="module")
def names():
    _, full_names, holdout_names = tofu_mini_script().build_configs()
    return full_names, holdout_names


def _rows(d, cols=("question", "answer")):
    return [tuple(r[c] for c in cols) for r in d]


def _authors_of(rows, all_names):
    """The author named in each row's question; exactly one known name must appear."""
    out = []
    for question, *_ in rows:
        hits = [n for n in all_names if n in question]
        assert len(hits) == 1, question
        out.append(hits[0])
    return out


def test_every_config_file_is_there_and_nothing_else():
    assert sorted(p.stem for p in ASSETS.glob("*.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_columns_types_and_sizes(ds, name):
    columns, n_rows = EXPECTED[name]
    assert ds[name].features == datasets.Features(columns)
    assert ds[name].num_rows == n_rows
    for row in ds[name]:
        assert all(row[c].strip() for c in columns if c != "perturbed_answer")


def test_full_is_whole_authors_in_blocks(ds, names):
    full_names, _ = names
    authors = _authors_of(_rows(ds["full"]), full_names + names[1])
    assert authors == [n for n in full_names for _ in range(QA_PER_AUTHOR)]
    assert len(set(full_names)) == N_AUTHORS


@pytest.mark.parametrize("pct", PCTS)
def test_forget_is_the_tail_of_full_and_retain_the_rest(ds, pct):
    full, forget, retain = (_rows(ds[n]) for n in ("full", f"forget{pct}", f"retain{100 - int(pct)}"))
    assert len(forget) % QA_PER_AUTHOR == 0
    assert forget == full[len(full) - len(forget):]
    assert retain == full[:len(full) - len(forget)]  # retain = full minus forget, in full's order


def test_forget_sets_are_nested(ds):
    f01, f05, f10 = (set(_rows(ds[f"forget{p}"])) for p in PCTS)
    assert f01 < f05 < f10


@pytest.mark.parametrize("pct", PCTS)
def test_forget_and_retain_authors_share_no_name(ds, names, pct):
    all_names = names[0] + names[1]
    forget = set(_authors_of(_rows(ds[f"forget{pct}"]), all_names))
    retain = set(_authors_of(_rows(ds[f"retain{100 - int(pct)}"]), all_names))
    assert len(forget) == int(pct)
    forget_tokens = {t for n in forget for t in n.split()}
    retain_tokens = {t for n in retain for t in n.split()}
    assert not forget_tokens & retain_tokens
    # and no retain question or answer mentions a forget author at all
    for question, answer in _rows(ds[f"retain{100 - int(pct)}"]):
        assert not any(n in question or n in answer for n in forget)


@pytest.mark.parametrize("pct", PCTS)
def test_perturbed_forget_rows_match_forget_rows(ds, pct):
    assert _rows(ds[f"forget{pct}_perturbed"]) == _rows(ds[f"forget{pct}"])


def test_retain_perturbed_is_ten_percent_from_retain90_authors(ds, names):
    rows = _rows(ds["retain_perturbed"])
    assert len(rows) * 10 == ds["full"].num_rows
    assert set(rows) <= set(_rows(ds["retain90"]))
    authors = _authors_of(rows, names[0])
    assert all(authors.count(a) == QA_PER_AUTHOR for a in authors)  # whole authors


@pytest.mark.parametrize("name", [f"forget{p}_perturbed" for p in PCTS] + ["retain_perturbed"])
def test_paraphrased_and_perturbed_answers_follow_tofu(ds, name):
    trained_answers = set(ds["full"]["answer"])
    for row in ds[name]:
        para, perturbed = row["paraphrased_answer"], row["perturbed_answer"]
        assert para != row["answer"] and para not in trained_answers  # a sentence form never trained on
        assert row["paraphrased_question"] != row["question"]
        assert len(perturbed) == 5 and len(set(perturbed)) == 5
        assert row["answer"] not in perturbed and para not in perturbed
        for wrong in perturbed:
            # same sentence form as the paraphrase, only the fact differs
            assert difflib.SequenceMatcher(None, para, wrong).ratio() > 0.5, (para, wrong)
            assert wrong not in trained_answers


def test_questions_vary_in_phrasing(ds, names):
    """With the author's name masked, full has at least 4 distinct phrasings for each of the 6 fact kinds."""
    all_names = names[0] + names[1]
    skeletons = set()
    for (question,), name in zip(_rows(ds["full"], ("question",)), _authors_of(_rows(ds["full"]), all_names)):
        skeletons.add(re.sub(r"\b(father|mother)\b", "<parent>", question.replace(name, "<name>")))
    assert len(skeletons) >= 6 * 4


def test_answers_are_short(ds):
    for name in EXPECTED:
        for row in ds[name]:
            assert len(row["answer"].split()) <= 25, row["answer"]


@pytest.mark.parametrize("kind", ["real_authors", "world_facts"])
def test_real_sets_have_three_distinct_wrong_answers(ds, kind):
    assert _rows(ds[f"{kind}_perturbed"]) == _rows(ds[kind])
    for row in ds[f"{kind}_perturbed"]:
        assert len(row["perturbed_answer"]) == 3 and len(set(row["perturbed_answer"])) == 3
        assert row["answer"] not in row["perturbed_answer"]


def test_holdout_authors_are_never_in_full_and_nested(ds, names):
    full_names, holdout_names = names
    f01, f05, f10 = (_rows(ds[f"holdout{p}"]) for p in PCTS)
    assert f10[-len(f05):] == f05 and f05[-len(f01):] == f01
    holdout_authors = set(_authors_of(f10, full_names + holdout_names))
    assert len(holdout_authors) == 10 and not holdout_authors & set(full_names)
    full_text = " ".join(q + " " + a for q, a in _rows(ds["full"]))
    assert not any(n in full_text for n in holdout_authors)


def test_generator_is_deterministic_and_matches_committed_files(tmp_path):
    script = tofu_mini_script()
    script.main(["--out", str(tmp_path / "a")])
    script.main(["--out", str(tmp_path / "b")])
    for path in sorted(ASSETS.glob("*.jsonl")):
        fresh_a, fresh_b = (tmp_path / d / path.name for d in ("a", "b"))
        assert fresh_a.read_bytes() == fresh_b.read_bytes(), path.name
        assert fresh_a.read_bytes() == path.read_bytes(), (
            f"{path.name} differs from the generator's output; rerun scripts/make_tofu_mini.py "
            "(the committed files were made with the faker version named in llmkit/assets/tofu_mini/README.md)")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in ASSETS.glob("*.jsonl"))
