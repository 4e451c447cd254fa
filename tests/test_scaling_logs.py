"""Log readers on hand-written fixtures: every number below is read off the fixture files by eye."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmkit.errors import LlmkitError
from llmkit.scaling.logs import FORMATS, read_log
from llmkit.scaling.schedules import lr_per_step, parse_schedule, read_lr_csv

FIX = Path(__file__).parent / "fixtures" / "scaling"


def test_trainer_state_keeps_train_and_eval_apart_and_ignores_summary():
    log = read_log(FIX / "trainer_state.json")
    assert log.loss.step.tolist() == [10, 20, 30]
    assert log.loss.value.tolist() == [6.5, 4.25, 3.0]  # not the summary's train_loss 4.58
    assert log.eval_loss.step.tolist() == [10, 30]
    assert log.eval_loss.value.tolist() == [6.2, 3.5]
    assert log.lr.value.tolist() == [1e-05, 2e-05, 1e-05]


def test_run_dir_falls_back_to_newest_checkpoint(tmp_path):
    for step in (5, 30):
        (tmp_path / f"checkpoint-{step}").mkdir()
    shutil.copy(FIX / "trainer_state.json", tmp_path / "checkpoint-30" / "trainer_state.json")
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 5, "loss": 9.0}]}))
    log = read_log(tmp_path)
    assert log.loss.step.tolist() == [10, 20, 30]
    shutil.copy(FIX / "metrics.jsonl", tmp_path / "metrics.jsonl")
    assert read_log(tmp_path).loss.step.tolist() == [1, 2, 4]  # metrics.jsonl wins when present


def test_metrics_jsonl_truncated_last_line_nonfinite_and_eval():
    log = read_log(FIX / "metrics.jsonl")
    assert log.loss.step.tolist() == [1, 2, 4]  # step 3 has loss Infinity, step 5 is cut off
    assert log.loss.value.tolist() == [7.0, 6.0, 4.0]
    assert log.lr.step.tolist() == [1, 2, 3, 4]  # the LR of step 3 is finite and kept
    assert log.eval_loss.step.tolist() == [2] and log.eval_loss.value.tolist() == [6.5]
    assert any("truncated" in n for n in log.notes)
    assert any("1 non-finite loss" in n for n in log.notes)


def test_malformed_middle_line_names_file_and_line():
    with pytest.raises(LlmkitError, match=r"malformed\.jsonl:2: malformed JSON line"):
        read_log(FIX / "malformed.jsonl")


def test_wandb_csv_restart_keeps_last_value_per_step():
    log = read_log(FIX / "wandb_restart.csv")
    assert log.loss.step.tolist() == [1, 2, 3, 4, 5]
    assert log.loss.value.tolist() == [5.0, 4.2, 3.2, 2.6, 2.2]  # the restarted run's values, not __MIN/__MAX
    assert log.lr.value.tolist() == [0.001, 0.001, 0.0009, 0.0008, 0.0007]
    assert any("repeated step" in n for n in log.notes)


def test_wandb_history_json_prefers_trainer_step_and_drops_nan():
    log = read_log(FIX / "wandb_history.json")
    assert log.loss.step.tolist() == [100, 200] and log.loss.value.tolist() == [3.0, 2.5]
    assert log.eval_loss.step.tolist() == [200] and log.eval_loss.value.tolist() == [2.7]
    assert log.lr.step.tolist() == [100, 200, 300]


def test_tensorboard_events_written_here(tmp_path):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    for step, loss, lr in [(0, 4.0, 0.1), (10, 3.0, 0.05), (10, 2.9, 0.05), (20, 2.0, 0.01)]:
        values = [Summary.Value(tag="train/loss", simple_value=loss), Summary.Value(tag="train/learning_rate", simple_value=lr)]
        writer.add_event(Event(step=step, wall_time=1.0 + step, summary=Summary(value=values)))
    writer.add_event(Event(step=20, wall_time=30.0, summary=Summary(value=[Summary.Value(tag="eval/loss", simple_value=2.5)])))
    writer.close()
    log = read_log(tmp_path)
    assert log.loss.step.tolist() == [0, 10, 20]
    np.testing.assert_allclose(log.loss.value, [4.0, 2.9, 2.0], rtol=1e-6)  # float32 storage
    np.testing.assert_allclose(log.lr.value, [0.1, 0.05, 0.01], rtol=1e-6)
    np.testing.assert_allclose(log.eval_loss.value, [2.5], rtol=1e-6)


def test_megatron_text_log():
    log = read_log(FIX / "megatron.log")
    assert log.loss.step.tolist() == [10, 20] and log.loss.value.tolist() == [9.812345, 8.1]
    assert log.lr.step.tolist() == [10, 20, 30] and log.lr.value.tolist() == [1.5e-05, 3e-05, 4.5e-05]
    assert log.eval_loss.step.tolist() == [20] and log.eval_loss.value.tolist() == [8.05]


def test_nanogpt_text_log():
    log = read_log(FIX / "nanogpt.log")
    assert log.loss.step.tolist() == [0, 10, 20] and log.loss.value.tolist() == [10.9812, 7.5, 6.25]
    assert log.eval_loss.step.tolist() == [0, 20] and log.eval_loss.value.tolist() == [10.99, 6.3]


def test_hf_printed_dicts_count_steps():
    log = read_log(FIX / "hf_printed.log")
    assert log.loss.step.tolist() == [1, 2] and log.loss.value.tolist() == [2.5, 2.0]
    assert log.eval_loss.step.tolist() == [2] and log.lr.value.tolist() == [5e-05, 4e-05]


def test_csv_with_empty_loss_cells_keeps_lr_at_every_step():
    log = read_log(FIX / "step_lr_loss.csv")
    assert log.loss.step.tolist() == [2, 4, 5]
    assert log.lr.step.tolist() == [0, 1, 2, 3, 4, 5]


def test_column_mapping_and_errors(tmp_path):
    path = tmp_path / "custom.csv"
    path.write_text("it,tl,vl\n1,3.0,\n2,2.0,2.5\n")
    log = read_log(path, columns={"step": "it", "loss": "tl", "eval_loss": "vl"})
    assert log.loss.value.tolist() == [3.0, 2.0] and log.eval_loss.step.tolist() == [2]
    with pytest.raises(LlmkitError, match="no record with a step field"):
        read_log(path)
    path.write_text("step,loss\n1,3.0\n2,abc\n3,1.0\n")
    with pytest.raises(LlmkitError, match=r"custom\.csv:3: field 'loss'"):
        read_log(path)
    with pytest.raises(LlmkitError, match="did you mean 'jsonl'"):
        read_log(path, fmt="jsnl")
    with pytest.raises(LlmkitError, match="no such file"):
        read_log(tmp_path / "missing.jsonl")


def test_lr_interpolation_flags_gaps_and_missing_warmup():
    lr, notes = lr_per_step(np.array([10, 20, 30, 40, 200]), np.array([1.0, 0.9, 0.8, 0.7, 0.0]), 200, "x.jsonl")
    assert lr[0] == 1.0 and lr[15] == pytest.approx(0.95) and lr[120] == pytest.approx(0.35)
    assert any("before step 10" in n for n in notes) and any("gap(s) 40-200" in n for n in notes)


def test_schedule_specs_against_formulas():
    cos = parse_schedule("cosine:peak=3e-4,steps=24000,warmup=2160,min=3e-5")
    t = 10000
    assert cos[t] == pytest.approx(3e-5 + 0.5 * 2.7e-4 * (1 + np.cos(np.pi * (t - 2160) / (24000 - 2160))))
    assert cos[1080] == pytest.approx(3e-4 * 1080 / 2159)  # np.linspace(0, peak, warmup)
    wsd = parse_schedule("wsd:peak=1,steps=100,cooldown=0.2,shape=1-sqrt,min=0")
    assert wsd[80] == 1.0 and wsd[85] == pytest.approx(1 - np.sqrt(0.25)) and wsd[100] == 0.0
    geo = parse_schedule("wsd:peak=3e-4,steps=24000,cooldown=4000,shape=geometric,min=3e-5")
    assert geo[22000] == pytest.approx(3e-4**0.5 * 3e-5**0.5)
    ms = parse_schedule("multistep:peak=1,steps=30,milestones=10/20,gamma=0.5")
    assert (ms[9], ms[10], ms[25]) == (1.0, 0.5, 0.25)
    assert parse_schedule("twostage:peak=3e-4,steps=16000,switch=8000,second=9e-5")[8000] == 9e-5
    assert parse_schedule("linear:peak=2,steps=10,min=1")[5] == 1.5
    with pytest.raises(LlmkitError, match="did you mean 'cosine'"):
        parse_schedule("cosin:peak=1,steps=10")
    with pytest.raises(LlmkitError, match="did you mean 'cooldown'"):
        parse_schedule("wsd:peak=1,steps=10,coldown=0.2")
    with pytest.raises(LlmkitError, match="min='3e-5x' is not a number"):
        parse_schedule("cosine:peak=1,steps=10,min=3e-5x")


noise_lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.builds(lambda s, v: f"iter {s}: loss {v}", st.integers(0, 50), st.floats(allow_nan=True, allow_infinity=True)),
        st.builds(lambda s, v: f"{{'loss': {v}, 'step': {s}}}", st.integers(-5, 50), st.floats(allow_nan=True)),
        st.builds(lambda s, v: json.dumps({"step": s, "loss": v}), st.integers(0, 50), st.floats(allow_nan=True)),
        st.builds(lambda s, v: f" iteration {s}/ 100 | learning rate: 1E-4 | lm loss: {v} |", st.integers(0, 50), st.floats()),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=noise_lines, fmt=st.sampled_from(["jsonl", "csv", "hf", "megatron", "nanogpt"]))
def test_parsers_never_crash_on_line_noise(tmp_path, lines, fmt):
    path = tmp_path / f"noise.{fmt}"
    path.write_bytes("\n".join(lines).encode("utf-8", "replace"))
    assert fmt in FORMATS
    try:
        log = read_log(path, fmt=fmt)
    except LlmkitError as err:
        assert "\n" not in str(err).strip()  # one line
        return
    for series in (log.loss, log.eval_loss, log.lr):
        assert np.all(np.diff(series.step) > 0)  # sorted, no duplicates
        assert np.all(np.isfinite(series.value))


spec_values = st.one_of(
    st.integers(-10, 3000).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(["linear", "1-sqrt", "cosine", "geometric", "x", "", "1/2", "3/abc", "1e12"]),
)
# a plausible peak and steps first (or noise, so both paths run), then random keys with random values
spec_items = st.tuples(
    st.tuples(st.just("peak"), st.one_of(st.sampled_from(["3e-4", "1", "0.02"]), spec_values)),
    st.tuples(st.just("steps"), st.one_of(st.integers(1, 3000).map(str), spec_values)),
).flatmap(lambda base: st.lists(st.tuples(st.sampled_from(["warmup", "min", "cooldown", "shape", "gamma", "milestones", "switch",
                                                                "second", "nope"]), spec_values), max_size=4).map(lambda extra: list(base) + extra))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["constant", "cosine", "linear", "wsd", "multistep", "twostage", "cosin"]), items=spec_items)
def test_schedule_specs_give_a_bounded_lr_or_one_line_error(name, items):
    spec = f"{name}:" + ",".join(f"{k}={v}" for k, v in items)
    try:
        lr = parse_schedule(spec)
    except LlmkitError as err:
        assert "\n" not in str(err)
        return
    peak = float(dict(items)["peak"])
    assert len(lr) == int(float(dict(items)["steps"])) + 1
    assert np.all(np.isfinite(lr)) and lr.min() >= 0 and lr.max() <= peak * (1 + 1e-12)


@pytest.mark.parametrize("row, why", [("10,nan", "lr a finite number"), ("10,-1e-4", "lr a finite number"), ("-3,1e-4", "step must be >= 0"),
                                      ("inf,1e-4", "not a number"), ("10,x", "not a number")])
def test_lr_csv_rejects_bad_rows_naming_file_and_line(tmp_path, row, why):
    path = tmp_path / "lr.csv"
    path.write_text(f"step,lr\n0,0\n{row}\n20,1e-4\n")
    with pytest.raises(LlmkitError, match=rf"lr\.csv:3: .*{why}"):
        read_lr_csv(path)


@pytest.mark.parametrize("row, why", [("-5,1e-3,3.0", r"log\.csv:3: step -5 is negative"),
                                      ("5,-1e-3,3.0", r"log\.csv:3: field 'lr' = -0\.001 is negative")])
def test_log_with_a_negative_step_or_lr_is_a_one_line_error(tmp_path, row, why):
    path = tmp_path / "log.csv"
    path.write_text(f"step,lr,loss\n1,1e-3,4.0\n{row}\n9,1e-3,2.0\n")
    with pytest.raises(LlmkitError, match=why):
        read_log(path)


def _events(folder: Path, n: int) -> Path:
    """A TensorBoard event file with train/loss at steps 0..n-1; returns its path."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for step in range(n):
        writer.add_event(Event(step=step, wall_time=1.0 + step, summary=Summary(value=[Summary.Value(tag="train/loss", simple_value=3.0)])))
    writer.close()
    return next(folder.glob("*tfevents*"))


def _last_good_step(data: bytes, cut: int) -> int:
    """The step of the last event record that ends at or before byte `cut`, walking TFRecord framing by hand
    (8-byte length, 4-byte crc, payload, 4-byte crc)."""
    from tensorboard.compat.proto.event_pb2 import Event

    pos, step = 0, None
    while pos + 12 <= len(data):
        size = int.from_bytes(data[pos : pos + 8], "little")
        end = pos + 12 + size + 4
        if end > cut:
            break
        step = Event.FromString(data[pos + 12 : pos + 12 + size]).step
        pos = end
    return step


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_damaged_tensorboard_file_names_the_file_and_the_step_where_reading_stopped(tmp_path, damage):
    path = _events(tmp_path, 100)
    data = path.read_bytes()
    middle = len(data) // 2
    if damage == "truncated":
        path.write_bytes(data[: middle + 7])
    else:
        flipped = bytearray(data)
        flipped[middle] ^= 0x10
        path.write_bytes(bytes(flipped))
    last = _last_good_step(data, middle)
    log = read_log(tmp_path)
    assert log.loss.step[-1] == last and 20 < last < 80  # what could be read is kept
    note = next(n for n in log.notes if path.name in n)
    assert f"after step {last}" in note and ("truncated" if damage == "truncated" else "corrupt") in note
    assert "\n" not in note


def test_tensorboard_without_known_tags_lists_the_tags_present_and_hints_columns(tmp_path):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from llmkit.scaling.fit import load_curves

    writer = EventFileWriter(str(tmp_path))
    for step in range(5):
        values = [Summary.Value(tag="Loss/train", simple_value=3.0 - step / 10), Summary.Value(tag="LR", simple_value=1e-3)]
        writer.add_event(Event(step=step, wall_time=1.0 + step, summary=Summary(value=values)))
    writer.close()
    with pytest.raises(LlmkitError, match=r"no loss values found.*fields present: LR, Loss/train.*--columns loss=Loss/train,lr=LR"):
        load_curves([tmp_path])
    curves, _ = load_curves([tmp_path], columns={"loss": "Loss/train", "lr": "LR"})
    np.testing.assert_allclose(curves[0].loss, [3.0, 2.9, 2.8, 2.7, 2.6], rtol=1e-6)
