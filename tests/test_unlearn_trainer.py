"""UnlearnTrainer and `task: unlearn` on the tiny model: smoke runs, one-pass = two-pass, what FLAT loads,
per-epoch template draws and the logged loss parts, each checked against an independent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import answer_prob, load_script

from llmkit.data import QADataArgs, load_split
from llmkit.errors import LlmkitError
from llmkit.train import main as train_main
from llmkit.unlearn import train as unlearn_train
from llmkit.unlearn.data import UnlearnCollator, UnlearnDataset, qa_examples
from llmkit.unlearn.losses import flat, token_logps
from llmkit.unlearn.templates import load_templates, sample_template
from llmkit.unlearn.trainer import REFERENCE_FILE, UnlearnTrainer, UnlearnTrainingArguments, stream_hidden, stream_logps


def unlearn_recipe(tmp_path: Path, name: str, **overrides) -> Path:
    recipe = {
        "task": "unlearn", "model_name_or_path": "tiny:llama-xs", "dataset": "tofu-mini", "dataset_config": "forget10",
        "prompt_format": "chat", "loss": "flat", "divergence": "kl", "max_length": 96,
        "global_batch_size": 16, "per_device_train_batch_size": 16, "max_steps": 6, "learning_rate": 1e-2,
        "lr_scheduler_type": "constant", "logging_steps": 2, "save_strategy": "no", "use_cpu": True, "seed": 3,
        "output_root": str(tmp_path / "runs"), "dataloader_num_workers": 0,
    }
    recipe.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def mean_probs(model_path: str, tokenizer, rows, templates, seed=3, epoch=0):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    p_f = [answer_prob(model, tokenizer, r["question"], r["answer"]) for r in rows]
    p_e = [answer_prob(model, tokenizer, r["question"], sample_template(templates, seed, epoch, i))
           for i, r in enumerate(rows)]
    return sum(p_f) / len(p_f), sum(p_e) / len(p_e)


def test_flat_and_grad_ascent_train_in_one_process(tmp_path, target_path, tiny_tokenizer, forget_rows):
    """Two runs back to back in one process (as the demo does): FLAT moves P_f down and P_e up, GA raises the NLL."""
    flat_recipe = unlearn_recipe(tmp_path, "tofu_mini_forget10_flat_kl", model_name_or_path=target_path,
                                 learning_rate=1e-3)
    ga_recipe = unlearn_recipe(tmp_path, "tofu_mini_forget10_grad_ascent", model_name_or_path=target_path,
                               loss="grad_ascent", divergence=None, learning_rate=1e-3)
    assert train_main([str(flat_recipe)]) == 0
    assert train_main([str(ga_recipe)]) == 0
    runs = tmp_path / "runs"
    templates = load_templates("idk")
    before = mean_probs(target_path, tiny_tokenizer, forget_rows, templates)
    after = mean_probs(str(runs / "tofu_mini_forget10_flat_kl" / "final"), tiny_tokenizer, forget_rows, templates)
    assert after[0] < before[0] and after[1] > before[1], (before, after)

    rows = [json.loads(line) for line in (runs / "tofu_mini_forget10_flat_kl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        assert {"p_forget", "p_template", "term_forget", "term_template"} <= r.keys()
        assert all(torch.isfinite(torch.tensor(r[k])) for k in ("loss", "p_forget", "p_template"))
        # KL: loss = −P_e + exp(P_f − 1) per example; the logged terms add up to the logged loss
        assert r["loss"] == pytest.approx(r["term_forget"] + r["term_template"], rel=1e-5, abs=1e-6)
    assert not (runs / "tofu_mini_forget10_flat_kl" / REFERENCE_FILE).exists()

    ga = [json.loads(line) for line in (runs / "tofu_mini_forget10_grad_ascent" / "metrics.jsonl").read_text().splitlines()]
    assert ga[-1]["nll_forget"] > ga[0]["nll_forget"] and all(r["loss"] == pytest.approx(-r["nll_forget"]) for r in ga)
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(target_path).state_dict()
    end = AutoModelForCausalLM.from_pretrained(str(runs / "tofu_mini_forget10_grad_ascent" / "final")).state_dict()
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_one_forward_pass_equals_two(tiny_model_path, tiny_tokenizer, forget_rows):
    """Forget and template sequences of different lengths: loss and gradients match separate passes."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    dataset = UnlearnDataset(tiny_tokenizer, qa_examples(tiny_tokenizer, forget_rows[:6], QADataArgs()),
                             frozenset({"forget", "template"}), templates=load_templates("idk"), max_length=96,
                             add_special_tokens=False, seed=1)
    batch = UnlearnCollator(tiny_tokenizer.pad_token_id)([dataset[i] for i in range(6)])
    assert batch["forget_input_ids"].shape[1] != batch["template_input_ids"].shape[1]
    results = []
    for joint in (True, False):
        model.zero_grad()
        logps = stream_logps(model, batch, ["forget", "template"], joint, tiny_tokenizer.pad_token_id)
        loss, parts = flat(*logps["forget"], *logps["template"], divergence="js")
        loss.backward()
        results.append((loss.detach(), parts, [p.grad.clone() for p in model.parameters()]))
    (l1, p1, g1), (l2, p2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-6)
    assert all(torch.allclose(p1[k], p2[k], atol=1e-6) for k in p1)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))
    # and P_f against the direct per-example computation
    direct = sum(answer_prob(model, tiny_tokenizer, r["question"], r["answer"]) for r in forget_rows[:6]) / 6
    assert float(p1["p_forget"]) == pytest.approx(direct, rel=1e-5)


def test_flat_loads_neither_retain_data_nor_a_second_model(tmp_path, monkeypatch):
    loaded, models = [], []
    real_split, real_lm = unlearn_train.load_split, unlearn_train.load_causal_lm
    monkeypatch.setattr(unlearn_train, "load_split", lambda *a, **k: loaded.append(a[:3]) or real_split(*a, **k))
    monkeypatch.setattr(unlearn_train, "load_causal_lm", lambda *a, **k: models.append(a) or real_lm(*a, **k))
    train_main([str(unlearn_recipe(tmp_path, "flat", max_steps=1, logging_steps=1, save_final=False))])
    assert loaded == [("tofu-mini", "forget10", "train")]
    assert len(models) == 1
    # the same recipe with grad_diff does read the retain split (so the spy would have seen it)
    loaded.clear()
    train_main([str(unlearn_recipe(tmp_path, "gd", loss="grad_diff", divergence=None, retain_config="retain90",
                                   max_steps=1, logging_steps=1, save_final=False))])
    assert loaded == [("tofu-mini", "forget10", "train"), ("tofu-mini", "retain90", "train")]


def test_npo_reference_is_the_starting_model(tmp_path, tiny_model_path, tiny_tokenizer, forget_rows):
    """NPO's stored reference log-probs equal the starting model's summed answer log-probs; first step log-ratio 0."""
    recipe = unlearn_recipe(tmp_path, "npo", loss="npo", divergence=None, beta=0.5, max_steps=1, logging_steps=1,
                            save_final=False)
    train_main([str(recipe)])
    run = tmp_path / "runs" / "npo"
    stored = json.loads((run / REFERENCE_FILE).read_text())["forget_seq_logps"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    for i in (0, 17, 59):
        r = forget_rows[i]
        p = answer_prob(model, tiny_tokenizer, r["question"], r["answer"])  # sanity: a probability
        assert 0 < p < 1
    dataset = unlearn_train.build_dataset(tiny_tokenizer, QADataArgs(dataset="tofu-mini", dataset_config="forget10"),
                                          unlearn_train.UnlearnArgs(loss="npo", max_length=96), seed=3)
    for i in (0, 17, 59):
        ids, labels = dataset[i]["forget_input_ids"], dataset[i]["forget_labels"]
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        expected = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)) if labels[t] != -100)
        assert stored[i] == pytest.approx(expected, rel=1e-5)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["log_ratio"] == pytest.approx(0.0, abs=1e-4)
    assert first["loss"] == pytest.approx(2 / 0.5 * torch.log(torch.tensor(2.0)).item(), rel=1e-4)


def test_templates_are_redrawn_each_epoch_and_parts_average_over_the_window(tmp_path, tiny_model_path,
                                                                             tiny_tokenizer, forget_rows):
    """lr=0, whole set per step, one step per epoch, logging every 2 steps: the logged p_template is the mean over
    epochs 0 and 1 of P_e with each epoch's own draws, computed here directly."""
    from transformers import AutoModelForCausalLM

    rows = forget_rows[:8]
    templates = load_templates("idk")
    dataset = UnlearnDataset(tiny_tokenizer, qa_examples(tiny_tokenizer, rows, QADataArgs()),
                             frozenset({"forget", "template"}), templates=templates, max_length=96,
                             add_special_tokens=False, seed=11)
    drawn = [sample_template(templates, 11, e, i) for e in (0, 1) for i in range(8)]
    assert drawn[:8] != drawn[8:]  # the draws differ between epochs
    args = UnlearnTrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8,
                                    num_train_epochs=2, learning_rate=0.0, logging_steps=2, save_strategy="no",
                                    report_to="none", use_cpu=True, seed=11)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    seen = []
    collate = UnlearnCollator(tiny_tokenizer.pad_token_id)

    def spy(features):
        seen.append(sorted(tiny_tokenizer.decode([t for t, l in zip(f["template_input_ids"], f["template_labels"])
                                                  if l != -100][:-1]) for f in features))
        return collate(features)

    trainer = UnlearnTrainer(model=model, args=args, train_dataset=dataset, data_collator=spy,
                             processing_class=tiny_tokenizer, loss_name="flat", loss_kwargs={"divergence": "kl"})
    trainer.train()
    assert seen == [sorted(drawn[:8]), sorted(drawn[8:])]
    logged = next(h for h in trainer.state.log_history if "p_template" in h)
    eval_model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    p_e = [answer_prob(eval_model, tiny_tokenizer, r["question"], drawn[e * 8 + i])
           for e in (0, 1) for i, r in enumerate(rows)]
    p_f = [answer_prob(eval_model, tiny_tokenizer, r["question"], r["answer"]) for r in rows]
    assert logged["p_template"] == pytest.approx(sum(p_e) / 16, rel=1e-4)
    assert logged["p_forget"] == pytest.approx(sum(p_f) / 8, rel=1e-4)


def test_bad_recipe_values_name_the_recipe(tmp_path):
    with pytest.raises(LlmkitError, match=r"flatt\.yaml.*did you mean 'flat'"):
        train_main([str(unlearn_recipe(tmp_path, "flatt", loss="flatt"))])
    with pytest.raises(LlmkitError, match=r"beta is not a parameter of loss 'flat'"):
        train_main([str(unlearn_recipe(tmp_path, "b", beta=0.1))])
    with pytest.raises(LlmkitError, match=r"needs retain data"):
        train_main([str(unlearn_recipe(tmp_path, "gd", loss="grad_diff", divergence=None))])
    with pytest.raises(LlmkitError, match=r"divergence: unknown 'klx'; did you mean 'kl'"):
        train_main([str(unlearn_recipe(tmp_path, "klx", divergence="klx"))])
    with pytest.raises(LlmkitError, match=r"reduction: unknown 'mean'; known: paper, reference"):
        train_main([str(unlearn_recipe(tmp_path, "mean", reduction="mean"))])
    with pytest.raises(LlmkitError, match=r"long\.yaml.*padded_length: 500 is shorter than max_length 600"):
        train_main([str(unlearn_recipe(tmp_path, "long", reduction="reference", max_length=600))])
    with pytest.raises(LlmkitError, match=r"needs layer"):
        train_main([str(unlearn_recipe(tmp_path, "rmu", loss="rmu", divergence=None, retain_config="retain90"))])
    with pytest.raises(LlmkitError, match=r"layer is a parameter of rmu"):
        train_main([str(unlearn_recipe(tmp_path, "lay", layer=3))])
    with pytest.raises(LlmkitError, match=r"trainable_params: "):
        train_main([str(unlearn_recipe(tmp_path, "re", trainable_params="model.(layers"))])
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made


def test_answers_cut_away_by_max_length_are_dropped(tiny_tokenizer, forget_rows):
    examples = qa_examples(tiny_tokenizer, forget_rows[:4], QADataArgs())
    prompt_len = len(tiny_tokenizer(examples[0].prompt, add_special_tokens=False)["input_ids"])
    dataset = UnlearnDataset(tiny_tokenizer, examples[:1] + examples, frozenset({"forget"}),
                             max_length=prompt_len + 2, add_special_tokens=False)
    assert dataset.truncated + dataset.dropped == 5
    for i in range(len(dataset)):
        labels = dataset[i]["forget_labels"]
        assert len(labels) <= prompt_len + 2 and any(l != -100 for l in labels)


def test_muse_text_is_windowed_with_every_token_a_label(tiny_tokenizer):
    data_args = QADataArgs(dataset="muse-news-mini", dataset_config="raw", dataset_split="forget")
    args = unlearn_train.UnlearnArgs(loss="flat", data_format="text", max_length=64, template_source="copyright")
    dataset = unlearn_train.build_dataset(tiny_tokenizer, data_args, args, seed=0)
    docs = list(load_split("muse-news-mini", "raw", "forget")["text"])
    stream = []
    for doc in docs:
        stream += tiny_tokenizer(doc, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    expected = [stream[i:i + 64] for i in range(0, len(stream), 64)]  # the tiny tokenizer adds no BOS
    expected = [w for w in expected if len(w) >= 2]
    assert [dataset[i]["forget_input_ids"] for i in range(len(dataset))] == expected
    assert all(dataset[i]["forget_labels"] == expected[i] for i in range(len(dataset)))
    copyright_lines = load_templates("copyright")
    template = dataset[3]
    text = tiny_tokenizer.decode([t for t, l in zip(template["template_input_ids"], template["template_labels"])
                                  if l != -100][:-1])
    assert text == sample_template(copyright_lines, 0, 0, 3)


def test_shipped_recipes_validate_and_match_their_generator(tmp_path):
    from llmkit.train import prepare

    root = Path(__file__).resolve().parent.parent
    generator = load_script("scripts/make_unlearn_recipes.py")
    generated = generator.recipes()
    shipped = {p.name: p.read_text(encoding="utf-8") for p in (root / "recipes" / "unlearn").glob("*.yaml")}
    assert shipped == generated
    assert len(shipped) == 3 * 10 * 2 + 3 + 2 * 2 + len(generator.TINY_METHODS)
    released = {k: yaml.safe_load(v) for k, v in shipped.items() if k.endswith("_released.yaml")}
    assert len(released) == 3
    for recipe in released.values():  # the released code's TOFU setting
        assert (recipe["reduction"], recipe["padded_length"], recipe["max_length"], recipe["divergence"],
                recipe["optim"], recipe["bf16"]) == ("reference", 500, 500, "tv", "paged_adamw_32bit", True)
    for corpus in ("news", "books"):  # FLAT on MUSE: template and forget answer continue the same prefix
        assert yaml.safe_load(shipped[f"muse_{corpus}_flat_kl.yaml"])["text_prompt_tokens"] > 0
    for name in shipped:
        # bf16 needs a GPU; everything else (keys, loss parameters, batch divisibility on 1 and 8 GPUs) is checked here
        # the released-code set keeps its micro-batch of 16 (g*/f* act on each micro-batch's scalar): 1 to 4 GPUs
        worlds = (1,) if "mini" in name else (1, 4) if name.endswith("_released.yaml") else (1, 8)
        for world in worlds:
            _, (run, _model, data, args, train_args) = prepare(str(root / "recipes" / "unlearn" / name),
                                                                ["--bf16", "false"], world)
            assert run.task == "unlearn" and train_args.output_dir.endswith(name[:-5])


def test_generated_templates_come_from_one_refusal_per_forget_question(tiny_tokenizer, tiny_model_path, monkeypatch):
    """template_source=generate asks the model once per forget question and trains on those refusals."""
    asked = []

    def fake_writer(model_path, data_args):
        assert model_path == tiny_model_path  # default: the model being unlearned
        return lambda requests: asked.extend(requests) or [f"I cannot say ({i})." for i in range(len(requests))]

    monkeypatch.setattr(unlearn_train, "refusal_writer", fake_writer)
    data_args = QADataArgs(dataset="tofu-mini", dataset_config="forget01")
    args = unlearn_train.UnlearnArgs(loss="flat", template_source="generate", max_length=96)
    dataset = unlearn_train.build_dataset(tiny_tokenizer, data_args, args, seed=0, model_path=tiny_model_path)
    questions = list(load_split("tofu-mini", "forget01")["question"])
    assert asked == [args.template_prompt.format(question=q) for q in questions]
    labels = dataset[0]["template_labels"]
    text = tiny_tokenizer.decode([t for t in labels if t != -100])
    assert text.startswith("I cannot say (") and text.rstrip("<|im_end|>").endswith(").")


def test_refusal_writer_generates_one_reply_per_request(tiny_model_path):
    write = unlearn_train.refusal_writer(tiny_model_path, QADataArgs())
    replies = write(["Who wrote Hamlet?", "Where is Paris?"])
    assert len(replies) == 2 and all(isinstance(r, str) and "\n" not in r for r in replies)


def test_idk_dpo_reference_covers_every_template_the_run_draws(tmp_path, tiny_model_path, tiny_tokenizer, forget_rows):
    """lr=0 over 3 epochs: the stored template references are the starting model's summed log-probs of exactly the
    (index, template) pairs drawn in epochs 0..2, and every step's log-ratios are 0 (each row got its own value)."""
    recipe = unlearn_recipe(tmp_path, "idk_dpo", loss="idk_dpo", divergence=None, beta=0.5, max_steps=None,
                            num_train_epochs=3, global_batch_size=len(forget_rows),
                            per_device_train_batch_size=len(forget_rows), learning_rate=0.0, logging_steps=1,
                            save_final=False)
    recipe.write_text(recipe.read_text().replace("max_steps: null\n", ""))
    assert train_main([str(recipe)]) == 0
    run = tmp_path / "runs" / "idk_dpo"
    stored = json.loads((run / REFERENCE_FILE).read_text())
    templates = load_templates("idk")
    drawn = {(i, templates.index(sample_template(templates, 3, e, i))) for e in range(3) for i in range(len(forget_rows))}
    assert {(i, t) for i, t, _ in stored["template_seq_logps"]} == drawn
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    for i, t, value in stored["template_seq_logps"][:3]:
        p = answer_prob(model, tiny_tokenizer, forget_rows[i]["question"], templates[t])  # mean token prob
        prompt = tiny_tokenizer.apply_chat_template([{"role": "user", "content": forget_rows[i]["question"]}],
                                                    add_generation_prompt=True, tokenize=False)
        ids = tiny_tokenizer(prompt + templates[t], add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
        start = len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        assert value == pytest.approx(sum(float(logp[k - 1, ids[k]]) for k in range(start, len(ids))), rel=1e-5)
        assert 0 < p < 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(rows) == 3
    for r in rows:
        assert r["log_ratio_template"] == pytest.approx(0.0, abs=1e-4)
        assert r["log_ratio_forget"] == pytest.approx(0.0, abs=1e-4)
        assert r["loss"] == pytest.approx(2 / 0.5 * math.log(2), rel=1e-4)


def test_frozen_prefix_copies_the_first_layers_and_leaves_the_model_whole(tiny_model_path):
    from transformers import AutoModelForCausalLM

    from llmkit.unlearn.trainer import decoder_layers, frozen_prefix

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    frozen = frozen_prefix(model, 0)
    assert len(decoder_layers(model)) == 2 and len(frozen.model.layers) == 1
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in model.parameters())
    ids = torch.tensor([[5, 9, 2, 7]])
    with torch.no_grad():
        expected = model(input_ids=ids, output_hidden_states=True).hidden_states[1]  # the output of layer 0
        got = stream_hidden(frozen, frozen.model.layers[0], {"x_input_ids": ids, "x_attention_mask": torch.ones_like(ids)},
                            ["x"], False, 0)["x"]
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(LlmkitError, match="layer: 2 is not a decoder layer"):
        frozen_prefix(model, 2)


def test_rmu_steers_one_layer_and_trains_only_the_chosen_matrix(tmp_path, tiny_model_path, tiny_tokenizer, forget_rows):
    """The first step's logged distances are computed here from the starting model (retain: 0, forget: distance of
    layer 0's output to c·u, the whole set in one batch); after training only layers.0.mlp.down_proj changed and
    the forget distance fell."""
    from transformers import AutoModelForCausalLM

    from llmkit.unlearn.trainer import steering_direction

    c = 4.0
    recipe = unlearn_recipe(tmp_path, "rmu", loss="rmu", divergence=None, retain_config="retain90", layer=0,
                            steering_coeff=c, alpha=1.0, trainable_params=r"model\.layers\.0\.mlp\.down_proj\.weight",
                            global_batch_size=len(forget_rows), per_device_train_batch_size=len(forget_rows),
                            max_steps=8, logging_steps=1, learning_rate=1e-2)
    assert train_main([str(recipe)]) == 0
    run = tmp_path / "runs" / "rmu"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert rows[0]["rmu_retain"] == pytest.approx(0.0, abs=1e-10)
    assert rows[-1]["rmu_forget"] < rows[0]["rmu_forget"] and rows[-1]["rmu_retain"] > 0
    start = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    end = AutoModelForCausalLM.from_pretrained(str(run / "final")).state_dict()
    changed = {k for k, v in start.state_dict().items() if not torch.equal(v, end[k])}
    assert changed == {"model.layers.0.mlp.down_proj.weight"}
    # step 1 saw the whole forget set: its distance is the mean of the per-example distances
    dataset = unlearn_train.build_dataset(tiny_tokenizer, QADataArgs(dataset="tofu-mini", dataset_config="forget10"),
                                          unlearn_train.UnlearnArgs(loss="rmu", layer=0, retain_config="retain90",
                                                                    max_length=96), seed=3)
    target = c * steering_direction(start.config.hidden_size, 3)
    distances = []
    for i in range(len(dataset)):
        ids, labels = dataset[i]["forget_input_ids"], dataset[i]["forget_labels"]
        with torch.no_grad():
            h = start(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[1][0]  # [T, H]
        keep = torch.tensor(labels) != -100
        distances.append(float((h[keep] - target).pow(2).mean(-1).mean()))
    assert rows[0]["rmu_forget"] == pytest.approx(sum(distances) / len(distances), rel=1e-5)
