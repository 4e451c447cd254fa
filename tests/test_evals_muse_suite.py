"""The MUSE suite end to end on the tiny model and a small MUSE-schema fixture."""

import json

import numpy as np
import pytest

from llmkit import data
from llmkit.errors import LlmkitError
from llmkit.evals.cli import main
from llmkit.evals.muse import STOP_STRINGS, cut_to_tokens, rouge_l_f1

SENTENCES = [
    "The council approved the new harbour budget on Tuesday after a long debate.",
    "Rain delayed the final match, and the crowd waited for two hours in the stands.",
    "A local baker won the regional prize for her rye bread and honey cake.",
    "The museum will reopen in spring with a gallery of maps from the old port.",
    "Engineers said the bridge repairs would finish before the winter storms.",
    "Schools in the valley closed early because of the heavy snow and ice.",
]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def muse_data(tmp_path, monkeypatch):
    root = tmp_path / "muse_fixture"
    write_jsonl(root / "verbmem" / "forget.jsonl", [{"prompt": s[:30], "gt": s[30:] * 3} for s in SENTENCES[:4]])
    qa = [{"question": f"What happened in story {i}?", "answer": s.split(",")[0]} for i, s in enumerate(SENTENCES)]
    for part in ("forget", "retain"):
        write_jsonl(root / "knowmem" / f"{part}_qa.jsonl", qa[:3])
        write_jsonl(root / "knowmem" / f"{part}_qa_icl.jsonl", qa[3:])
    write_jsonl(root / "privleak" / "forget.jsonl", [{"text": s} for s in SENTENCES[:3]])
    write_jsonl(root / "privleak" / "holdout.jsonl", [{"text": s} for s in SENTENCES[3:]])
    monkeypatch.setitem(data.BUNDLED, "muse-fixture", root)
    monkeypatch.setattr(data, "_ALIASES", data._ALIASES | {"muse-fixture"})
    return ["eval/muse_news.yaml", "--model", "tiny:llama-xs", "--dataset", "muse-fixture",
            "--verbmem_max_new_tokens", "8", "--knowmem_max_new_tokens", "8"]


def test_muse_suite_end_to_end_and_own_reference(muse_data, tmp_path):
    from transformers import AutoTokenizer

    from llmkit.tiny import resolve_model_path

    assert main([*muse_data, "--out", str(tmp_path / "a")]) == 0
    out = tmp_path / "a" / "eval"
    result = json.loads((out / "muse_news.json").read_text())
    summary = json.loads((out / "muse_news_summary.json").read_text())
    assert summary["privleak"] is None and "--reference" in summary["absent"]["privleak"]
    tok = AutoTokenizer.from_pretrained(resolve_model_path("tiny:llama-xs"))
    verbmem = result["items"]["verbmem_f"]
    gts = [s[30:] * 3 for s in SENTENCES[:4]]
    # MUSE cuts the reference to max_new_tokens ids (special tokens included)
    assert [it["reference"] for it in verbmem] == [cut_to_tokens(tok, gt, 8) for gt in gts]
    want = 100 * np.mean(rouge_l_f1([it["generation"] for it in verbmem], [it["reference"] for it in verbmem]))
    assert summary["verbmem_f"] == pytest.approx(want)
    for it in result["items"]["knowmem_f"]:
        assert it["prompt"].count("Question: ") == 4 and it["prompt"].endswith("\nAnswer: ")
        assert not any(stop in it["generation"] for stop in STOP_STRINGS)
    scores = result["items"]["privleak"]
    f = [s["min_k"] for s in scores if s["split"] == "forget"]
    h = [s["min_k"] for s in scores if s["split"] == "holdout"]
    pairs = [(a, b) for a in f for b in h]
    assert summary["mink_auc"] == pytest.approx(sum((b < a) + 0.5 * (b == a) for a, b in pairs) / len(pairs))

    ref = out / "muse_news_reference.json"
    assert main([*muse_data, "--out", str(tmp_path / "b"), "--reference", str(ref)]) == 0
    assert json.loads((tmp_path / "b" / "eval" / "muse_news_summary.json").read_text())["privleak"] == 0.0
    with pytest.raises(LlmkitError, match="forget split 'news', but this suite evaluates 'books'"):
        main([*muse_data, "--corpus", "books", "--out", str(tmp_path / "c"), "--reference", str(ref)])


def test_muse_ou_compat_and_bad_metric(muse_data, tmp_path):
    assert main([*muse_data, "--out", str(tmp_path), "--ou_compat", "true", "--metrics", "verbmem_f,privleak",
                 "--retrain_auc", "0.5"]) == 0
    summary = json.loads((tmp_path / "eval" / "muse_news_summary.json").read_text())
    result = json.loads((tmp_path / "eval" / "muse_news.json").read_text())
    assert [it["reference"] for it in result["items"]["verbmem_f"]] == [s[30:] * 3 for s in SENTENCES[:4]]
    assert 0.0 <= summary["verbmem_f"] <= 1.0 and "knowmem_f" not in summary
    assert summary["privleak"] == pytest.approx((summary["mink_auc"] - 0.5) / (0.5 + 1e-10) * 100)
    with pytest.raises(LlmkitError, match="did you mean 'knowmem_f'"):
        main([*muse_data, "--out", str(tmp_path), "--metrics", "knowmem_ff", "--force"])


def test_cache_serves_only_complete_results(muse_data, tmp_path, capsys, monkeypatch):
    import llmkit.evals.reference as reference

    argv = [*muse_data, "--out", str(tmp_path), "--metrics", "knowmem_r"]
    out = tmp_path / "eval"
    assert main(argv) == 0
    for name in ("muse_news_reference.json", "muse_news_summary.json", "muse_news_summary.md"):
        capsys.readouterr()
        (out / name).unlink()  # a result with one file missing is not complete
        assert main(argv) == 0
        assert "cached result" not in capsys.readouterr().out and (out / name).is_file()
    (out / "muse_news_summary.json").write_text('{"truncated')  # a damaged file too
    assert main(argv) == 0
    assert "cached result" not in capsys.readouterr().out
    assert json.loads((out / "muse_news_summary.json").read_text())["suite"] == "muse_news"
    assert main(argv) == 0
    assert "cached result" in capsys.readouterr().out  # complete again: served from the cache

    def crash(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError):
        patch.setattr(reference, "write_reference", crash)  # a crash after the first files were written
        main([*argv, "--force"])
    assert main(argv) == 0
    assert "cached result" not in capsys.readouterr().out and (out / "muse_news_reference.json").is_file()


def test_batch_size_override_is_used_for_generation_and_zero_is_one_line(muse_data, tmp_path, monkeypatch):
    from transformers.generation.utils import GenerationMixin

    rows, real = [], GenerationMixin.generate
    monkeypatch.setattr(GenerationMixin, "generate", lambda self, *a, **k: rows.append(len(k["input_ids"])) or real(self, *a, **k))
    assert main([*muse_data, "--out", str(tmp_path), "--metrics", "knowmem_r", "--batch_size", "2"]) == 0
    assert rows == [2, 1]  # 3 questions in batches of 2, not the suite file's 8
    assert json.loads((tmp_path / "eval" / "muse_news.json").read_text())["config"]["batch_size"] == 2
    for bad in ("0", "-3"):
        with pytest.raises(LlmkitError, match="batch_size must be a positive integer") as err:
            main([*muse_data, "--out", str(tmp_path), "--batch_size", bad])
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("k", ["0", "1.5", "-0.2", "nan"])
def test_k_must_lie_in_zero_one(muse_data, tmp_path, k):
    with pytest.raises(LlmkitError, match=r"k must lie in \(0, 1\]") as err:
        main([*muse_data, "--out", str(tmp_path), "--k", k])
    assert "\n" not in str(err.value)


def test_local_copy_of_the_bundled_folder_loads_like_it(tmp_path):
    import shutil

    copy = tmp_path / "news"
    shutil.copytree(data.BUNDLED["muse-news-mini"], copy)
    argv = ["eval/muse_news.yaml", "--model", "tiny:llama-xs", "--knowmem_max_new_tokens", "4", "--metrics", "knowmem_f"]
    assert main([*argv, "--dataset", str(copy), "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--dataset", "muse-news-mini", "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "eval" / "muse_news.json").read_text())["items"] for d in "ab")
    assert a == b and len(a["knowmem_f"]) == 20


def test_dataset_of_another_corpus_is_refused(tmp_path):
    argv = ["eval/muse_news.yaml", "--model", "tiny:llama-xs", "--metrics", "knowmem_r", "--out", str(tmp_path)]
    with pytest.raises(LlmkitError, match="dataset muse-books-mini holds MUSE books, but corpus is 'news'") as err:
        main([*argv, "--dataset", "muse-books-mini"])
    assert "\n" not in str(err.value)
    assert main([*argv, "--dataset", "muse-books-mini", "--corpus", "books"]) == 0
    ref = json.loads((tmp_path / "eval" / "muse_news_reference.json").read_text())
    assert ref["forget_split"] == "books"


def test_reference_records_its_min_k_variant_and_a_mismatch_is_refused(muse_data, tmp_path):
    privleak_only = [*muse_data, "--metrics", "privleak"]
    assert main([*privleak_only, "--out", str(tmp_path / "default")]) == 0
    ref = tmp_path / "default" / "eval" / "muse_news_reference.json"
    assert {"ou_compat": False, "k": 0.4}.items() <= json.loads(ref.read_text()).items()
    with pytest.raises(LlmkitError, match="ou_compat: False, k: 0.4.* this run uses ou_compat: True, k: 0.4") as err:
        main([*privleak_only, "--out", str(tmp_path / "x"), "--reference", str(ref), "--ou_compat", "true"])
    assert "\n" not in str(err.value)
    with pytest.raises(LlmkitError, match="this run uses ou_compat: False, k: 0.2"):
        main([*privleak_only, "--out", str(tmp_path / "x"), "--reference", str(ref), "--k", "0.2"])
    # open-unlearning's MUSE_EVAL.json always holds its own variant (Min-40%, its token counting)
    ou = tmp_path / "MUSE_EVAL.json"
    ou.write_text(json.dumps({"mia_min_k": {"agg_value": 0.4}}))
    with pytest.raises(LlmkitError, match="ou_compat: True, k: 0.4.* this run uses ou_compat: False, k: 0.4"):
        main([*privleak_only, "--out", str(tmp_path / "x"), "--reference", str(ou)])
    assert main([*privleak_only, "--out", str(tmp_path / "ou"), "--reference", str(ou), "--ou_compat", "true"]) == 0
    summary = json.loads((tmp_path / "ou" / "eval" / "muse_news_summary.json").read_text())
    assert summary["privleak"] == pytest.approx((summary["mink_auc"] - 0.6) / (0.6 + 1e-10) * 100)


def test_extraction_strength_from_teacher_forced_predictions(muse_data, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.tiny import resolve_model_path

    assert main([*muse_data, "--out", str(tmp_path), "--metrics", "extraction_strength"]) == 0
    summary = json.loads((tmp_path / "eval" / "muse_news_summary.json").read_text())
    path = resolve_model_path("tiny:llama-xs")
    model, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    scores = []
    for s in SENTENCES[:4]:  # open-unlearning: prompt + " " + gt, every continuation token but the last labelled
        prompt, gt = s[:30], s[30:] * 3
        ids = tok(prompt + " " + gt)["input_ids"]
        start = len(tok(prompt)["input_ids"])
        with torch.no_grad():
            pred = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        target, guess = ids[start:-1], pred[start - 1:-2]
        n = len(target)
        k = next((k for k in range(n) if guess[k:] == target[k:]), n - 1)
        scores.append(1 - k / n)
    assert summary["extraction_strength"] == pytest.approx(np.mean(scores))
