"""`llmkit report RUN [RUN ...] [--out report.md] [--suite NAME]`: run directories -> one markdown comparison table.

Per run it reads config.yaml (task, loss, model, data, key hyperparameters), fit/params.json (`llmkit fit`), and the
eval summaries `llmkit eval` wrote next to each evaluated model: <run>/eval/, <run>/final/eval/ and
<run>/checkpoint-<step>/eval/ (<suite>_summary.json). One row per evaluated model and suite; a run with no eval
gets one row, and every missing value shows as "–".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.io import read_json_object
from llmkit.checkpoints import CHECKPOINT_DIR

DASH = "–"

# benchmark -> (column header, summary key) of the numbers worth comparing across runs
KEY_METRICS = {
    "tofu": (("forget quality", "forget_quality"), ("model utility", "model_utility"),
             ("forget ROUGE", "forget_Q_A_ROUGE"), ("retain ROUGE", "retain_Q_A_ROUGE"),
             ("forget truth ratio", "forget_truth_ratio")),
    "muse": (("VerbMem forget", "verbmem_f"), ("KnowMem forget", "knowmem_f"), ("KnowMem retain", "knowmem_r"),
             ("PrivLeak", "privleak")),
}
RUN_COLUMNS = ("run", "model", "task", "loss", "base model", "data", "hyperparameters")


def read_summaries(model_dir: str | Path) -> dict[str, dict]:
    """Suite name -> eval summary, from <model_dir>/eval/<suite>_summary.json."""
    eval_dir = Path(model_dir) / "eval"
    if not eval_dir.is_dir():
        return {}
    return {path.name[: -len("_summary.json")]: read_json_object(path) for path in sorted(eval_dir.glob("*_summary.json"))}


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, str | None, Path]]:
    """(step, 'ep <epoch>' from trainer_state.json or None, path) of every checkpoint-<step> dir, by step."""
    run_dir = Path(run_dir)
    found = []
    for child in run_dir.iterdir() if run_dir.is_dir() else ():
        match = CHECKPOINT_DIR.match(child.name)
        if match and child.is_dir():
            state = child / "trainer_state.json"
            epoch = read_json_object(state).get("epoch") if state.is_file() else None
            found.append((int(match.group(1)), None if epoch is None else f"ep {round(epoch, 2):g}", child))
    return sorted(found, key=lambda row: row[0])


def read_config(run_dir: Path) -> dict:
    """The resolved recipe in <run>/config.yaml, or {} for a run llmkit did not write."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise LlmkitError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise LlmkitError(f"{path} is not a mapping of recipe keys")
    return config


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def hyperparameters(config: dict) -> str | None:
    """The settings that tell runs of one recipe family apart: lr, length, batch, loss weights, LoRA rank."""
    parts = []
    if config.get("learning_rate") is not None:
        parts.append(f"lr {_num(config['learning_rate'])}")
    max_steps = config.get("max_steps")
    if isinstance(max_steps, int) and max_steps > 0:
        parts.append(f"{max_steps} steps")
    elif config.get("num_train_epochs") is not None:
        parts.append(f"{_num(config['num_train_epochs'])} ep")
    if config.get("global_batch_size") is not None:
        parts.append(f"bs {config['global_batch_size']}")
    parts += [f"{key} {_num(config[key])}" for key in ("alpha", "beta", "gamma", "delta")
              if isinstance(config.get(key), (int, float))]
    if config.get("use_peft"):
        parts.append(f"LoRA r {config.get('lora_r')}")
    return ", ".join(parts) or None


def fit_cell(run_dir: Path) -> str | None:
    """'<law> R² <r2>: p=v, ...' from <run>/fit/params.json, or None without a fit."""
    path = run_dir / "fit" / "params.json"
    if not path.is_file():
        return None
    params = read_json_object(path)
    try:
        values = ", ".join(f"{name}={value:.4g}" for name, value in params["params"].items())
        return f"{params['law']} R² {params['r2']:.4f}: {values}"
    except (KeyError, TypeError, ValueError) as err:
        raise LlmkitError(f"{path}: missing or malformed field {err}") from None


def cell(value, spec: str = ".4g") -> str:
    """A markdown cell: '–' for missing, yes/no for flags, floats as `spec` (default .4g), '|' escaped."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value).replace("|", "\\|").replace("\n", " ")


def evaluated_models(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, dir) of the run itself, final/ and each checkpoint, in that order."""
    models = [("run", run_dir), ("final", run_dir / "final")]
    models += [(f"{path.name} ({label})" if label else path.name, path) for _, label, path in checkpoint_dirs(run_dir)]
    return models


def report_rows(run_dirs, suite: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table over the given run directories."""
    records = []  # (run values, suite name, summary or None)
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise LlmkitError(f"report: run directory not found: {run_dir}")
        config = read_config(run_dir)
        data = "/".join(str(config[k]) for k in ("dataset", "dataset_config") if config.get(k) is not None) or None
        run_values = {"run": run_dir.name, "task": config.get("task"), "loss": config.get("loss"),
                      "base model": config.get("model_name_or_path"), "data": data,
                      "hyperparameters": hyperparameters(config), "fit": fit_cell(run_dir)}
        found = 0
        for label, model_dir in evaluated_models(run_dir):
            for name, summary in read_summaries(model_dir).items():
                if suite is None or name == suite:
                    records.append(({**run_values, "model": label}, name, summary))
                    found += 1
        if not found:
            records.append(({**run_values, "model": None}, None, None))
    benchmarks = list(dict.fromkeys(s.get("benchmark") for _, _, s in records if s))
    metric_columns = [col for b in benchmarks for col in KEY_METRICS.get(b, ())]
    header = [*RUN_COLUMNS, "suite", *(h for h, _ in metric_columns), "collapsed", "fit"]
    rows = []
    for values, name, summary in records:
        summary = summary or {}
        rows.append([cell(values[c]) for c in RUN_COLUMNS] + [cell(name)]
                    + [cell(summary.get(key)) for _, key in metric_columns]
                    + [cell(summary.get("collapsed")), cell(values["fit"])])
    return header, rows


def report_table(run_dirs, suite: str | None = None) -> str:
    """The markdown comparison table."""
    header, rows = report_rows(run_dirs, suite)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point of `llmkit report`."""
    from llmkit.io import atomic_write_text

    parser = argparse.ArgumentParser(prog="llmkit report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (runs/*)")
    parser.add_argument("--out", default="report.md", help="markdown file to write (default ./report.md)")
    parser.add_argument("--suite", help="only this eval suite (e.g. tofu_forget10)")
    args = parser.parse_args(argv)
    table = report_table(args.runs, args.suite)
    atomic_write_text(args.out, table + "\n")
    print(table)
    print(f"llmkit report: wrote {args.out}")
    return 0
