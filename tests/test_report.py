"""`llmkit report` on run directories crafted in tmp with known config, eval summaries and fits."""

import json

import pytest
import yaml

from llmkit.cli import main as llmkit_main
from llmkit.errors import LlmkitError
from llmkit.report import report_table


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj) if path.suffix == ".yaml" else json.dumps(obj))


def tofu(fq, mu, collapsed=False):
    return {"suite": "tofu_forget10", "benchmark": "tofu", "forget_quality": fq, "model_utility": mu,
            "forget_Q_A_ROUGE": 0.25, "retain_Q_A_ROUGE": 0.875, "forget_truth_ratio": 0.5, "collapsed": collapsed}


@pytest.fixture
def runs(tmp_path):
    target = tmp_path / "tofu_mini_full"
    write(target / "config.yaml", {"task": "finetune", "model_name_or_path": "tiny:llama", "dataset": "tofu-mini",
                                   "dataset_config": "full", "learning_rate": 0.003, "num_train_epochs": 15.0,
                                   "max_steps": -1, "global_batch_size": 16, "use_peft": False})
    write(target / "final" / "eval" / "tofu_forget10_summary.json", tofu(1.5e-7, 0.625))
    write(target / "fit" / "params.json", {"law": "annealing", "r2": 0.99871, "params": {"L0": 2.5, "A": 0.125}})
    flat = tmp_path / "tofu_mini_forget10_flat_kl"
    write(flat / "config.yaml", {"task": "unlearn", "loss": "flat_kl", "model_name_or_path": "runs/demo/full/final",
                                 "dataset": "tofu-mini", "dataset_config": "forget10", "learning_rate": 2e-4,
                                 "num_train_epochs": 8.0, "max_steps": -1, "global_batch_size": 8, "beta": None,
                                 "alpha": 1.0, "use_peft": True, "lora_r": 16})
    for step, epoch, summary in ((10, 1.0, tofu(None, 0.5)), (20, 2.0, tofu(0.25, 0.0625, collapsed=True))):
        write(flat / f"checkpoint-{step}" / "trainer_state.json", {"epoch": epoch})
        write(flat / f"checkpoint-{step}" / "eval" / "tofu_forget10_summary.json", summary)
    write(flat / "checkpoint-20" / "eval" / "muse_news_summary.json",
          {"benchmark": "muse", "verbmem_f": 12.5, "knowmem_f": 3.0, "knowmem_r": 40.0, "privleak": None,
           "collapsed": None})
    bare = tmp_path / "bare"  # no config, no eval, no fit
    bare.mkdir()
    return target, flat, bare


def parse(table):
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].strip("|").split("|")) == {"---"}
    return [dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)) for line in lines[2:]]


def test_rows_hold_config_evals_and_fit(runs):
    target, flat, bare = runs
    rows = parse(report_table([target, flat, bare]))
    assert [(r["run"], r["model"], r["suite"]) for r in rows] == [
        ("tofu_mini_full", "final", "tofu_forget10"),
        ("tofu_mini_forget10_flat_kl", "checkpoint-10 (ep 1)", "tofu_forget10"),
        ("tofu_mini_forget10_flat_kl", "checkpoint-20 (ep 2)", "muse_news"),
        ("tofu_mini_forget10_flat_kl", "checkpoint-20 (ep 2)", "tofu_forget10"),
        ("bare", "–", "–"),
    ]
    full, ep1, muse, ep2, empty = rows
    assert full["task"] == "finetune" and full["loss"] == "–" and full["data"] == "tofu-mini/full"
    assert full["hyperparameters"] == "lr 0.003, 15 ep, bs 16"
    assert full["forget quality"] == "1.5e-07" and full["model utility"] == "0.625" and full["collapsed"] == "no"
    assert full["fit"] == "annealing R² 0.9987: L0=2.5, A=0.125"
    assert ep1["loss"] == "flat_kl" and ep1["hyperparameters"] == "lr 0.0002, 8 ep, bs 8, alpha 1, LoRA r 16"
    assert ep1["forget quality"] == "–" and ep1["fit"] == "–"
    assert ep2["forget quality"] == "0.25" and ep2["model utility"] == "0.0625" and ep2["collapsed"] == "yes"
    assert ep2["retain ROUGE"] == "0.875" and ep2["VerbMem forget"] == "–"
    assert muse["VerbMem forget"] == "12.5" and muse["PrivLeak"] == "–" and muse["forget quality"] == "–"
    assert set(empty.values()) - {"bare"} == {"–"}


def test_suite_filter_and_no_none(runs):
    table = report_table(runs, suite="muse_news")
    rows = parse(table)
    assert [(r["run"], r["suite"]) for r in rows] == [("tofu_mini_full", "–"), ("tofu_mini_forget10_flat_kl", "muse_news"),
                                                     ("bare", "–")]
    assert "forget quality" not in rows[0]  # only the benchmarks present get columns
    assert "None" not in table and "nan" not in table


def test_cli_writes_and_prints(runs, tmp_path, capsys):
    out = tmp_path / "out" / "report.md"
    assert llmkit_main(["report", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().strip() in printed
    assert len(parse(out.read_text().strip())) == 5


def test_bad_input_is_one_line(runs, tmp_path, capsys):
    with pytest.raises(LlmkitError, match="run directory not found: .*missing"):
        report_table([tmp_path / "missing"])
    target = runs[0]
    (target / "final" / "eval" / "tofu_forget10_summary.json").write_text("{not json")
    with pytest.raises(LlmkitError, match="tofu_forget10_summary.json is not valid JSON"):
        report_table([target])
    assert llmkit_main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmkit report: error:") and "\n" not in err
