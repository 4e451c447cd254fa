"""Template sources and the per-epoch seeded draw."""

import collections

import pytest

from llmkit.errors import LlmkitError
from llmkit.unlearn.templates import IDK_PROMPT, generate_templates, load_templates, sample_template


def test_bundled_lists_have_the_promised_size_and_no_duplicates():
    idk, copyright_ = load_templates("idk"), load_templates("copyright")
    assert len(idk) == 100 and len(set(idk)) == 100
    assert len(copyright_) == 50 and len(set(copyright_)) == 50
    assert all("copyright" in t.lower() or "rights" in t.lower() for t in copyright_)
    assert not set(idk) & set(copyright_)


def test_user_file_one_template_per_line(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("  I cannot say.  \n\nNo comment.\n", encoding="utf-8")
    assert load_templates(str(path)) == ["I cannot say.", "No comment."]


def test_missing_or_empty_user_file_names_the_file(tmp_path):
    with pytest.raises(LlmkitError, match="no file .*nope.txt"):
        load_templates(str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(LlmkitError, match="empty.txt has no non-empty line"):
        load_templates(str(empty))


def test_misspelt_bundled_name_suggests_it():
    with pytest.raises(LlmkitError, match="did you mean 'copyright'"):
        load_templates("copyrigth")


def test_generated_templates_are_cleaned_and_deduplicated():
    seen = []

    def fake_model(prompts):
        seen.extend(prompts)
        return ['1. "I have no idea."', "- Not something I know.\nExtra line.", "I have no idea.", "  \n", "\n\nPass."]

    questions = [f"Where was author {i} born?" for i in range(5)]
    got = load_templates("generate", generate_fn=fake_model, questions=questions)
    assert got == ["I have no idea.", "Not something I know.", "Pass."]
    assert seen == [IDK_PROMPT.format(question=q) for q in questions]  # one prompt per forget question


def test_generation_needs_a_model_and_usable_replies():
    with pytest.raises(LlmkitError, match="needs a model"):
        load_templates("generate")
    with pytest.raises(LlmkitError, match="empty replies"):
        generate_templates(lambda prompts: [""] * len(prompts), ["a", "b", "c"])
    with pytest.raises(ValueError, match="1 replies for 3 prompts"):
        generate_templates(lambda prompts: ["x"], ["a", "b", "c"])


def test_sampling_is_deterministic_per_seed_epoch_index_and_redrawn_each_epoch():
    templates = load_templates("idk")
    epoch0 = [sample_template(templates, seed=42, epoch=0, index=i) for i in range(200)]
    assert epoch0 == [sample_template(templates, seed=42, epoch=0, index=i) for i in range(200)]
    epoch1 = [sample_template(templates, seed=42, epoch=1, index=i) for i in range(200)]
    other_seed = [sample_template(templates, seed=7, epoch=0, index=i) for i in range(200)]
    # With 100 templates two independent draws agree 1% of the time: expect ~2 matches of 200, not ~200.
    assert sum(a == b for a, b in zip(epoch0, epoch1)) < 20
    assert sum(a == b for a, b in zip(epoch0, other_seed)) < 20


def test_sampling_covers_the_pool_roughly_uniformly():
    templates = [f"t{i}" for i in range(10)]
    counts = collections.Counter(sample_template(templates, 0, epoch, i) for epoch in range(10) for i in range(500))
    assert set(counts) == set(templates)
    assert all(400 < c < 600 for c in counts.values())  # 500 expected each; ±100 is > 4 standard deviations


def test_hub_dataset_id_reads_its_line_files(tmp_path, monkeypatch):
    """`owner/name` downloads the dataset repo's .txt/.jsonl files (the download is faked: no network in tests);
    `owner/name:file` one file. A JSON-quoted line is decoded, a plain one kept."""
    from llmkit.unlearn import templates

    repo = tmp_path / "snapshot"
    repo.mkdir()
    (repo / "idk.jsonl").write_text('I have no idea.\n"Quoted \\"one\\"."\n\n', encoding="utf-8")
    (repo / "extra.txt").write_text("Another.\n", encoding="utf-8")
    (repo / "README.md").write_text("# not a template\n", encoding="utf-8")
    calls = []

    def snapshot(repo_id, repo_type, allow_patterns):
        calls.append((repo_id, repo_type, tuple(allow_patterns)))
        return str(repo)

    def one_file(repo_id, filename, repo_type):
        calls.append((repo_id, filename, repo_type))
        return str(repo / filename)

    monkeypatch.setattr(templates, "snapshot_download", snapshot)
    monkeypatch.setattr(templates, "hf_hub_download", one_file)
    assert load_templates("someone/idk") == ["Another.", "I have no idea.", 'Quoted "one".']
    assert calls[-1] == ("someone/idk", "dataset", ("*.txt", "*.jsonl"))
    assert load_templates("someone/idk:idk.jsonl") == ["I have no idea.", 'Quoted "one".']
    assert calls[-1] == ("someone/idk", "idk.jsonl", "dataset")


def test_unreachable_hub_dataset_is_one_line_naming_template_source(monkeypatch):
    from llmkit.unlearn import templates

    def offline(**kwargs):
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(templates, "snapshot_download", lambda *a, **k: offline())
    with pytest.raises(LlmkitError, match=r"template_source: 'someone/idk' is no local file, and as a hub dataset .*offline mode"):
        load_templates("someone/idk")
