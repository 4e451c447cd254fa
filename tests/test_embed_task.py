"""`task: embed` end to end in-process: `llmkit mine` with the offline MiniLM teacher, then `llmkit train` on tiny:llama-xs
with LoRA; final/ loads as a plain SentenceTransformer. Plus the one-line errors for a bad recipe and a missing cache."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from llmkit.embed.prompts import format_query, load_task_prompts
from llmkit.errors import LlmkitError

ASSET = Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "embed_mini"
TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def _recipe(tmp_path: Path, name: str = "recipe", **overrides) -> Path:
    rows = [json.loads(line) for line in (ASSET / "train.jsonl").read_text().splitlines()]
    keep = ([r for r in rows if r["task"] == "people_qa"][:24] + [r for r in rows if r["task"] == "paraphrase"][:16]
            + [r for r in rows if r["task"] == "topic"][:16])
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    recipe = {
        "task": "embed", "model_name_or_path": "tiny:llama-xs", "dtype": "float32",
        "use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "merge_lora": True,
        "mining_data": str(tmp_path / "data.jsonl"), "mining_corpus": "llmkit/assets/embed_mini/corpus.jsonl",
        "teacher_model": TEACHER, "num_negatives": 3, "first_stage_top": 20,
        "task_prompts": "llmkit/assets/embed_mini/tasks.json", "max_seq_length": 256, "temperature": 0.05,
        "icl_max_examples": 2, "icl_budget": 96,
        "global_batch_size": 4, "per_device_train_batch_size": 4, "max_steps": 8, "learning_rate": 3e-3,
        "lr_scheduler_type": "constant", "logging_steps": 1, "save_strategy": "no", "use_cpu": True, "seed": 0,
        "dataloader_drop_last": True, "output_root": str(tmp_path / "runs"), "run_name": "embed_smoke",
    }
    recipe.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_recipe_errors_name_the_file(tmp_path):
    from llmkit.train import main

    with pytest.raises(LlmkitError, match=r"recipe\.yaml: EmbedArgs: pooling: unknown value 'eso'; did you mean 'eos'"):
        main([str(_recipe(tmp_path, pooling="eso"))])
    with pytest.raises(LlmkitError, match=r"recipe\.yaml: MiningArgs: relative_margin / absolute_margin"):
        main([str(_recipe(tmp_path, absolute_margin=1.0))])
    with pytest.raises(LlmkitError, match=r"MiningArgs: relative_margin 2: must lie in \[0, 1\)"):
        main([str(_recipe(tmp_path, relative_margin=2.0))])
    with pytest.raises(LlmkitError, match=r"MiningArgs: num_negatives 0: must be >= 1"):
        main([str(_recipe(tmp_path, num_negatives=0))])
    with pytest.raises(LlmkitError, match=r"EmbedArgs: kd_weight -1: must be >= 0"):
        main([str(_recipe(tmp_path, kd_weight=-1.0))])
    with pytest.raises(LlmkitError, match=r"mined_dir: .*mined does not exist; run `llmkit mine .*recipe\.yaml` first"):
        main([str(_recipe(tmp_path))])


@pytest.mark.parametrize("override, message", [
    ({"task_prompts": "nope/tasks.json"}, r"task_prompts: nope/tasks.json does not exist"),
    ({"model_name_or_path": "/nope/model"}, r"model_name_or_path: /nope/model does not exist"),
])
def test_mine_checks_what_it_renders_with_before_mining(tmp_path, override, message):
    """The prompts file and the student model are read after mining: a typo is one line before any mining."""
    from llmkit.embed.cli import mine_main

    with pytest.raises(LlmkitError, match=message):
        mine_main([str(_recipe(tmp_path, **override))])
    assert not (tmp_path / "runs").exists()


def test_every_model_option_reaches_the_embedder(tmp_path, monkeypatch):
    """The recipe's attn_implementation (flash_attention_2 on GPUs) is what the trained backbone runs with."""
    import llmkit.embed.train as embed_train
    from llmkit.embed.cli import mine_main
    from llmkit.train import main

    class Built(Exception):
        pass

    def stop(model, *args, **kwargs):
        raise Built(model)

    recipe = _recipe(tmp_path, attn_implementation="eager", query_max_length=300, max_seq_length=64)
    mine_main([str(recipe)])
    monkeypatch.setattr(embed_train, "build_trainer", stop)
    with pytest.raises(Built) as built:
        main([str(recipe)])
    backbone = built.value.args[0][0]
    assert backbone.auto_model.config._attn_implementation == "eager"
    assert (backbone.query_length, backbone.document_length) == (300, 64)


def test_mine_then_train_then_final_loads(tmp_path, capsys, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from llmkit.embed.cli import mine_main
    from llmkit.embed.model import build_embedder
    from llmkit.runs import read_metrics
    from llmkit.train import main

    recipe = _recipe(tmp_path)
    # mining builds no training arguments: a bf16 GPU recipe mines on a CPU node
    assert mine_main([str(recipe), "--bf16", "true", "--use_cpu", "false"]) == 0
    mined_dir = tmp_path / "runs" / "embed_smoke" / "mined"
    assert json.loads((mined_dir / "prepared" / "prepared.json").read_text())["tasks"] == ["paraphrase", "people_qa", "topic"]
    meta = json.loads((mined_dir / "mining.json").read_text())
    assert set(meta["stats"]) == {"people_qa", "paraphrase", "topic"} and meta["reranker"] == "dense"
    stamp = (mined_dir / "mining.json").stat().st_mtime_ns
    assert mine_main([str(recipe)]) == 0 and (mined_dir / "mining.json").stat().st_mtime_ns == stamp  # cached
    assert "rows in" in capsys.readouterr().out

    # the cache belongs to its mining settings: changing one asks for a new `llmkit mine`
    with pytest.raises(LlmkitError, match="mined with other settings"):
        main([str(recipe), "--num_negatives", "2"])

    # the rendered inputs belong to their prompt settings too
    with pytest.raises(LlmkitError, match="prepared with other prompt settings"):
        main([str(recipe), "--icl_budget", "64"])

    # training only reads the inputs `llmkit mine` rendered: it never samples examples itself
    import llmkit.embed.prompts as prompts

    monkeypatch.setattr(prompts, "sample_example_ids", lambda *a, **k: pytest.fail("training re-sampled examples"))
    assert main([str(recipe)]) == 0
    assert "in-batch pool 16 documents per query (4 per device x 1 process(es) x group 4)" in capsys.readouterr().err
    run = tmp_path / "runs" / "embed_smoke"
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 8 and all(np.isfinite(r["loss"]) and "infonce" in r and "kd" in r for r in rows)
    final = run / "final"
    assert (final / "COMPLETE").is_file() and (final / "modules.json").is_file()
    assert not (final / "adapter_config.json").exists()  # merge_lora: plain weights
    loaded = SentenceTransformer(str(final), device="cpu")
    texts = ["Where does Nils Brandt live?", "The fox ran across the field at dawn."]
    emb = loaded.encode(texts)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    tokens = loaded.tokenize(texts)["input_ids"]
    assert (tokens[:, -1] == loaded[0].tokenizer.eos_token_id).all()  # EOS kept, left padding
    base = build_embedder("tiny:llama-xs", max_seq_length=256, device="cpu").encode(texts)
    assert np.abs(emb - base).max() > 1e-3  # the trained adapter is in the weights

    # the instruction format it was trained with is saved as named prompts: a plain SentenceTransformer applies it
    tasks = load_task_prompts(ASSET / "tasks.json")
    queries = ["Where does Nils Brandt live?", "Which hobby does Nils Brandt enjoy?"]
    assert np.abs(loaded.encode_query(queries)
                  - loaded.encode([format_query(tasks["people_qa"].instruction, q) for q in queries])).max() < 1e-6
    for name, task in tasks.items():
        assert np.abs(loaded.encode_query(queries, prompt_name=name)
                      - loaded.encode([format_query(task.instruction, q) for q in queries])).max() < 1e-6
    assert np.abs(loaded.encode_document(texts) - emb).max() < 1e-6  # documents stay raw


def test_resume_lora_run_equals_straight_run(tmp_path):
    """4 steps straight == 2 steps, stop, resume from checkpoint-2, 2 more (LoRA adapter + optimizer restored)."""
    import shutil

    from sentence_transformers import SentenceTransformer

    from llmkit.embed.cli import mine_main
    from llmkit.runs import read_metrics
    from llmkit.train import main

    common = dict(max_steps=4, merge_lora=False, save_strategy="steps", save_steps=2, mined_dir=str(tmp_path / "mined"))
    straight = _recipe(tmp_path, "straight", run_name="straight", **common)
    mine_main([str(straight)])
    main([str(straight)])
    resumed = _recipe(tmp_path, "resumed", run_name="resumed", **common)
    main([str(resumed)])
    run = tmp_path / "runs" / "resumed"
    shutil.rmtree(run / "checkpoint-4")  # as if killed after step 2
    shutil.rmtree(run / "final")
    first_two = [r for r in read_metrics(run / "metrics.jsonl") if r["step"] <= 2]
    main([str(resumed)])
    # resumed, not retrained: the rows of steps 1-2 (wall-clock times included) are the first run's
    assert [r for r in read_metrics(run / "metrics.jsonl") if r["step"] <= 2] == first_two

    texts = ["Which hobby does Nils Brandt enjoy?", "The striker scored twice in the final minutes of the match."]
    a = SentenceTransformer(str(tmp_path / "runs" / "straight" / "final"), device="cpu").encode(texts)
    b = SentenceTransformer(str(run / "final"), device="cpu").encode(texts)
    assert np.abs(a - b).max() < 1e-5
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4]
    losses_a = [r["loss"] for r in read_metrics(tmp_path / "runs" / "straight" / "metrics.jsonl") if "loss" in r]
    losses_b = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert losses_b == pytest.approx(losses_a, abs=1e-5)


def test_merged_lora_run_stopped_before_final_gets_the_merged_final_of_a_straight_run(tmp_path):
    """merge_lora: a run stopped after its last step, before final/, is re-run: final/ is made from the last
    checkpoint's adapter, merged as the straight run's final/ is (plain weights, the same embeddings)."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from llmkit.embed.cli import mine_main
    from llmkit.train import main

    common = dict(max_steps=2, save_strategy="steps", save_steps=2, mined_dir=str(tmp_path / "mined"))
    straight = _recipe(tmp_path, "straight", run_name="straight", **common)
    mine_main([str(straight)])
    assert main([str(straight)]) == 0
    stopped = _recipe(tmp_path, "stopped", run_name="stopped", **common)
    assert main([str(stopped), "--save_final", "false"]) == 0  # as if killed before final/ was written
    run = tmp_path / "runs" / "stopped"
    assert (run / "checkpoint-2" / "adapter_config.json").is_file() and not (run / "final").exists()
    assert main([str(stopped)]) == 0

    final = run / "final"
    assert (final / "COMPLETE").is_file() and (final / "modules.json").is_file()
    assert not (final / "adapter_config.json").exists()  # merge_lora: plain weights, as in the straight run
    straight_final = tmp_path / "runs" / "straight" / "final"
    files = lambda folder: {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files(final) == files(straight_final) - {"training_args.bin"}  # the trainer's own record, not the model
    a, b = load_file(straight_final / "model.safetensors"), load_file(final / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    texts = ["Which hobby does Nils Brandt enjoy?", "The striker scored twice in the final minutes of the match."]
    a = SentenceTransformer(str(straight_final), device="cpu").encode(texts)
    b = SentenceTransformer(str(final), device="cpu").encode(texts)
    assert np.abs(a - b).max() < 1e-5


def test_prepared_inputs_are_replaced_whole_and_a_folder_llmkit_did_not_write_is_kept(tmp_path):
    from datasets import Dataset

    from llmkit.embed.prepared import load_prepared, save_prepared

    save_prepared({"a": Dataset.from_dict({"query": ["q1"]})}, tmp_path, "k1")
    save_prepared({"b": Dataset.from_dict({"query": ["q2", "q3"]})}, tmp_path, "k2")  # other settings: re-rendered
    loaded = load_prepared(tmp_path, "k2")
    assert list(loaded) == ["b"] and loaded["b"]["query"] == ["q2", "q3"]
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]  # no old rendering or temporary folder left
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["b", "prepared.json"]

    other = tmp_path / "other"
    (other / "prepared").mkdir(parents=True)
    (other / "prepared" / "notes.txt").write_text("mine")
    with pytest.raises(LlmkitError, match=r"mined_dir: .*prepared is not empty and holds no prepared\.json"):
        save_prepared({"a": Dataset.from_dict({"query": ["q1"]})}, other, "k1")
    assert [p.name for p in other.rglob("*")] == ["prepared", "notes.txt"]
