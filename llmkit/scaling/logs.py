"""Any training log -> sorted, de-duplicated (step, value) series for train loss, eval loss and LR.

Readers turn a file into numbered records (dicts); one collector maps their keys to the three
series, keeps the last value per step (restarts re-log steps), and drops non-finite values with
a count. A truncated last line (a killed run) is skipped with a note; any other malformed line
raises LlmkitError naming the file and the line.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError, did_you_mean

# Canonical field -> accepted key names, in priority order (first present wins).
ALIASES = {
    "step": ("step", "global_step", "trainer/global_step", "train/global_step", "iteration", "iter", "_step", "Step"),
    "loss": ("loss", "train/loss", "train_loss", "lm loss", "lm_loss", "train/lm_loss", "training_loss"),
    "eval_loss": ("eval_loss", "eval/loss", "val_loss", "val/loss", "validation_loss", "valid/loss", "eval/lm_loss"),
    "lr": ("lr", "learning_rate", "train/learning_rate", "train/lr", "lr-AdamW", "optimizer/lr"),
}
SERIES = ("loss", "eval_loss", "lr")


@dataclass
class Series:
    """One metric over steps: `step` is sorted and unique, `value` is finite."""

    step: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.step)


@dataclass
class RunLog:
    """The three series read from one log, plus notes on what was dropped or repaired."""

    path: str
    loss: Series
    eval_loss: Series
    lr: Series
    notes: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # every key seen beside the step: for "which column is the loss?"


def _number(value, where: str, key: str) -> float | None:
    """A float from a JSON/CSV cell; None for an empty cell; LlmkitError for text that is not a number."""
    if value is None or (isinstance(value, str) and value.strip() in {"", "null", "None"}):
        return None
    if isinstance(value, bool):
        raise LlmkitError(f"{where}: field {key!r} is a boolean, expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LlmkitError(f"{where}: field {key!r} = {str(value)[:40]!r} is not a number") from None


def _pick(record: dict, canonical: str, columns: dict) -> str | None:
    """The key of `record` that holds `canonical`, honouring a user column mapping first."""
    if canonical in columns:
        return columns[canonical] if columns[canonical] in record else None
    return next((k for k in ALIASES[canonical] if k in record), None)


def collect(records, path: str, columns: dict | None = None, notes: list[str] | None = None) -> RunLog:
    """Records (lineno, dict) -> RunLog; keeps the last value per step and drops non-finite ones."""
    columns = dict(columns or {})
    unknown = set(columns) - set(ALIASES)
    if unknown:
        raise LlmkitError(f"{path}: unknown column mapping key(s) {sorted(unknown)}; use {list(ALIASES)}")
    notes = list(notes or [])
    last: dict[str, dict[int, float]] = {name: {} for name in SERIES}
    nonfinite = {name: 0 for name in SERIES}
    repeats = {name: 0 for name in SERIES}
    n_records, seen = 0, set()
    for lineno, record in records:
        where = f"{path}:{lineno}"
        step_key = _pick(record, "step", columns)
        if step_key is None:
            continue
        step = _number(record[step_key], where, step_key)
        if step is None or not math.isfinite(step):
            continue
        if step < 0:  # the laws index the LR by step: a negative step has no place on the curve
            raise LlmkitError(f"{where}: step {step:g} is negative")
        n_records += 1
        seen.update(k for k in record if k != step_key)
        # HF's end-of-training summary carries `train_loss` = the run's mean loss, not a step's loss.
        summary = "train_runtime" in record
        for name in SERIES:
            key = _pick(record, name, columns)
            if key is None or (summary and name == "loss"):
                continue
            value = _number(record[key], where, key)
            if value is None:
                continue
            if not math.isfinite(value):
                nonfinite[name] += 1
                continue
            if name == "lr" and value < 0:
                raise LlmkitError(f"{where}: field {key!r} = {value:g} is negative")
            repeats[name] += int(step) in last[name]
            last[name][int(step)] = value  # a restart re-logs steps: the later line wins
    for name in SERIES:
        if nonfinite[name]:
            notes.append(f"{path}: dropped {nonfinite[name]} non-finite {name} value(s)")
        if repeats[name]:
            notes.append(f"{path}: {repeats[name]} repeated step(s) in {name} (restart?); kept the last of each")
    if n_records == 0:
        raise LlmkitError(f"{path}: no record with a step field (looked for {', '.join(ALIASES['step'])})")
    series = {}
    for name in SERIES:
        steps = np.array(sorted(last[name]), dtype=np.int64)
        series[name] = Series(steps, np.array([last[name][s] for s in steps], dtype=np.float64))
    return RunLog(path, series["loss"], series["eval_loss"], series["lr"], notes, sorted(seen))


def _json_lines(path: Path, notes: list[str]):
    """(lineno, dict) per JSONL line; a broken *last* line is a killed writer and only noted."""
    lines = path.read_text(errors="replace").splitlines()
    last_nonempty = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == last_nonempty:
                notes.append(f"{path}:{i + 1}: truncated last line skipped")
                continue
            raise LlmkitError(f"{path}:{i + 1}: malformed JSON line: {line[:60]!r}") from None
        if not isinstance(record, dict):
            raise LlmkitError(f"{path}:{i + 1}: expected a JSON object per line, got {type(record).__name__}")
        yield i + 1, record


def _json_document(path: Path):
    """(index, dict) from a JSON file: HF trainer_state (`log_history`), a W&B history list or {"history": [...]}."""
    try:
        doc = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as err:
        raise LlmkitError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    if isinstance(doc, dict):
        rows = doc.get("log_history", doc.get("history"))
        if rows is None:
            raise LlmkitError(f"{path}: JSON has neither 'log_history' (HF trainer_state) nor 'history' (W&B export)")
    else:
        rows = doc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise LlmkitError(f"{path}: expected a list of JSON objects (one per logging step)")
    yield from ((i + 1, row) for i, row in enumerate(rows))


def _csv_header_key(name: str) -> str:
    """W&B UI exports name columns `<run> - train/loss`; keep the metric part."""
    return name.split(" - ", 1)[1].strip() if " - " in name else name.strip()


def _csv_rows(path: Path, notes: list[str]):
    """(lineno, dict) per CSV/TSV row; W&B's __MIN/__MAX columns are dropped; a short last row is noted."""
    text = path.read_text(errors="replace")
    delimiter = "\t" if path.suffix == ".tsv" else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise LlmkitError(f"{path}: empty CSV file")
    header = [_csv_header_key(h) for h in rows[0]]
    keep = [i for i, h in enumerate(header) if not h.endswith(("__MIN", "__MAX"))]
    last_nonempty = max((i for i, r in enumerate(rows) if any(c.strip() for c in r)), default=0)
    for i, row in enumerate(rows[1:], start=1):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            if i == last_nonempty:
                notes.append(f"{path}:{i + 1}: truncated last row skipped")
                continue
            raise LlmkitError(f"{path}:{i + 1}: {len(row)} fields, header has {len(header)}")
        yield i + 1, {header[j]: row[j] for j in keep}


def _event_file_damage(path: Path) -> str | None:
    """Where an event file stops being readable, as a note; None when every record is whole.

    TensorBoard's reader stops silently at a truncated or corrupt record and drops the rest of the curve, so the
    file is walked once more with its record reader to say where, and how much is lost.
    """
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    reader = pywrap_tensorflow.PyRecordReader_New(str(path))
    size, offset, step = path.stat().st_size, 0, None
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return None
        except errors.DataLossError as err:
            kind = "truncated" if "truncated" in str(err).lower() else "corrupt (crc check failed)"
            where = f"after step {step}" if step is not None else "before the first event"
            return (f"{path}: event record {where} is {kind}; reading stopped there, "
                    f"{size - offset} of {size} bytes unread (the rest of the curve is missing)")
        record = reader.record()
        offset += 16 + len(record)  # 8-byte length, 4-byte crc, payload, 4-byte crc
        step = Event.FromString(record).step


def _tensorboard(path: Path, notes: list[str]):
    """(index, dict) per (tag, step) scalar of a TensorBoard event file or directory."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    try:
        acc.Reload()
    except Exception as err:  # the reader raises several private error types on corrupt files
        raise LlmkitError(f"{path}: cannot read TensorBoard events ({err})") from None
    files = [path] if path.is_file() else sorted(p for p in path.glob("*tfevents*") if p.is_file())
    notes += [note for note in map(_event_file_damage, files) if note]
    tags = acc.Tags()
    index = 0
    for tag in tags.get("scalars", []):
        for event in acc.Scalars(tag):
            index += 1
            yield index, {"step": event.step, tag: event.value}
    for tag in tags.get("tensors", []):  # TF2 / torch writers that store scalars as tensors
        for event in acc.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.size == 1:
                index += 1
                yield index, {"step": event.step, tag: float(value.reshape(-1)[0])}


NUM = r"(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)"


def _hf_printed(path: Path, notes: list[str]):
    """HF Trainer's printed dicts `{'loss': 2.1, 'learning_rate': ...}`; HF prints no step, so train lines are counted."""
    count = 0
    for i, line in enumerate(path.read_text(errors="replace").splitlines()):
        start, end = line.find("{"), line.rfind("}")
        if start < 0 or end <= start:
            continue
        try:
            record = ast.literal_eval(line[start : end + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        if not isinstance(record, dict) or not all(isinstance(k, str) for k in record):
            continue
        if "step" not in record:
            if "loss" in record and "train_runtime" not in record:
                count += 1
            record = {**record, "step": count}
        yield i + 1, record
    if count:
        notes.append(f"{path}: steps are counts of printed train-loss lines (HF prints no step)")


def _regex_lines(patterns):
    """A reader yielding the named groups of the first pattern that matches each line."""
    compiled = [re.compile(p) for p in patterns]

    def read(path: Path, notes: list[str]):
        for i, line in enumerate(path.read_text(errors="replace").splitlines()):
            for pattern in compiled:
                match = pattern.search(line)
                if match:
                    yield i + 1, {k: v for k, v in match.groupdict().items() if v is not None}
                    break

    return read


def _find_in_dir(path: Path) -> Path:
    """A run directory -> its metrics.jsonl, else the newest checkpoint's trainer_state.json, else event files."""
    if (path / "metrics.jsonl").is_file():
        return path / "metrics.jsonl"
    checkpoints = sorted(
        (p for p in path.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if checkpoints:
        return checkpoints[-1] / "trainer_state.json"
    if (path / "trainer_state.json").is_file():
        return path / "trainer_state.json"
    if any(path.rglob("*tfevents*")):
        return path
    raise LlmkitError(f"{path}: no metrics.jsonl, checkpoint-*/trainer_state.json or TensorBoard events in this directory")


def detect_format(path: Path) -> str:
    """Guess the format name (a key of FORMATS) from the name, then from the first lines."""
    name = path.name
    if path.is_dir() or "tfevents" in name:
        return "tensorboard"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    head = path.read_text(errors="replace")[:20000].splitlines()[:200]
    if head and head[0].lstrip().startswith("{\"") and head[0].rstrip().endswith("}"):
        return "jsonl"
    scores = {}
    for fmt in ("megatron", "nanogpt", "hf"):
        scores[fmt] = sum(1 for _, r in FORMATS[fmt](path, []) if len(r) > 1) if head else 0
    best = max(scores, key=scores.get)
    if scores[best] == 0:
        raise LlmkitError(f"{path}: unknown log format; pass format= one of {sorted(FORMATS)}")
    return best


def read_log(path: str | Path, fmt: str | None = None, columns: dict | None = None) -> RunLog:
    """Read any supported log (or a run directory) into train loss, eval loss and LR series."""
    path = Path(path)
    if not path.exists():
        raise LlmkitError(f"{path}: no such file or directory")
    if path.is_dir() and fmt != "tensorboard":
        path = _find_in_dir(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise LlmkitError(f"{path}: unknown log format {fmt!r}{did_you_mean(fmt, FORMATS)}")
    notes: list[str] = []
    records = list(FORMATS[fmt](path, notes))
    return collect(records, str(path), columns, notes)


# Log format name -> reader(path, notes) yielding (lineno, record dict).
FORMATS = {
    "jsonl": _json_lines,  # llmkit metrics.jsonl, W&B JSONL, any JSON-lines log
    "json": lambda path, notes: _json_document(path),  # HF trainer_state.json, W&B history JSON
    "csv": _csv_rows,  # `step,lr,loss`, W&B CSV exports, any CSV with a column mapping
    "tensorboard": _tensorboard,
    "hf": _hf_printed,
    "megatron": _regex_lines([
        rf"validation loss at iteration\s+(?P<step>\d+).*?lm loss value:\s*(?P<eval_loss>{NUM})",
        rf"iteration\s+(?P<step>\d+)\s*/\s*\d+.*?learning rate:\s*(?P<lr>{NUM}).*?lm loss:\s*(?P<loss>{NUM})",
        rf"iteration\s+(?P<step>\d+)\s*/\s*\d+.*?lm loss:\s*(?P<loss>{NUM})",
    ]),
    "nanogpt": _regex_lines([
        rf"^step (?P<step>\d+): train loss {NUM}, val loss (?P<eval_loss>{NUM})",  # nanoGPT's periodic estimate
        rf"^iter (?P<step>\d+): loss (?P<loss>{NUM})",
        rf"step:(?P<step>\d+)/\d+ val_loss:(?P<eval_loss>{NUM})",  # modded-nanogpt
        rf"step:(?P<step>\d+)/\d+ train_loss:(?P<loss>{NUM})",
        rf"step\s+(?P<step>\d+)/\d+ \| (?:train )?loss (?P<loss>{NUM}).*?\| lr (?P<lr>{NUM})",  # llm.c
        rf"^s:(?P<step>\d+) tel:(?P<loss>{NUM})",
        rf"^s:(?P<step>\d+) vl:(?P<eval_loss>{NUM})",
    ]),
}
