"""Recipes: one flat YAML file plus `--key value` overrides, filled into typed dataclasses.

Precedence is dataclass default < YAML < command line. A key may belong to several dataclasses of a task
(e.g. `trust_remote_code` is both a model and an SFT option): it is set in each. An unknown key is an error
naming the key, where it came from and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import subprocess
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.io import atomic_write_text, write_json

TRUE_STRINGS = {"true", "yes", "1", "on"}
FALSE_STRINGS = {"false", "no", "0", "off"}


@dataclass
class RunArgs:
    """What every llmkit recipe has, whatever its task."""

    task: str = field(default="", metadata={"help": "finetune | unlearn | embed | pretrain"})
    global_batch_size: int = field(
        default=0, metadata={"help": "sequences per optimizer step over all devices; gradient accumulation is derived"}
    )
    output_root: str = field(default="runs", metadata={"help": "run directories go to <output_root>/<run_name>"})
    resume: str = field(default="auto", metadata={"help": "auto (last complete checkpoint) | never | PATH"})
    save_final: bool = field(default=True, metadata={"help": "write <run>/final/ after training"})


def load_recipe(path: str | Path) -> dict:
    """Read a recipe file into a flat dict, with one-line errors for the usual mistakes."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise LlmkitError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise LlmkitError(f"{path}: a recipe is a flat mapping of key: value, got {type(data).__name__}")
    nested = [k for k, v in data.items() if isinstance(v, dict) and k not in _DICT_KEYS_ALLOWED]
    if nested:
        raise LlmkitError(f"{path}: key {nested[0]!r} is nested; recipes are flat (no sections, no includes)")
    return data


# TrainingArguments fields that legitimately take a mapping.
_DICT_KEYS_ALLOWED = {"fsdp_config", "deepspeed", "model_init_kwargs", "dataset_kwargs", "lr_scheduler_kwargs",
                      "gradient_checkpointing_kwargs", "activation_checkpointing_kwargs", "optim_args"}


def parse_cli_overrides(argv: list[str]) -> dict:
    """`--key value`, `--key=value` and bare `--flag` (meaning true) into a dict of raw strings."""
    out: dict = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise LlmkitError(f"command line: expected --key value, got {token!r}")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 1
        else:
            value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _coerce(value, tp, key: str, source: str):
    """Convert a YAML or command-line value to the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(tp)
        text = value.lower() if isinstance(value, str) else None
        # "none" is a real value of some string options (report_to: none), so only null means None there.
        if value is None or (type(None) in arms and (text == "null" or (text == "none" and str not in arms))):
            return None
        arms = [a for a in arms if a is not type(None)]
        if any(isinstance(a, type) and isinstance(value, a) and not isinstance(value, str) for a in arms):
            return value
        # A string like "no" or "5" becomes the typed scalar arm; otherwise it stays a string before it is
        # wrapped into a list or dict arm.
        arms.sort(key=lambda a: 1 if a is str else 2 if typing.get_origin(a) in (list, tuple, dict) or a in (list, dict) else 0)
        errors = []
        for arm in arms:
            try:
                return _coerce(value, arm, key, source)
            except LlmkitError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise LlmkitError(f"{source}: {key}={value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        (inner, *_) = typing.get_args(tp) or (typing.Any,)
        return [_coerce(v, inner, key, source) for v in value]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("{") else value
        return value
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in TRUE_STRINGS | FALSE_STRINGS:
                raise ValueError
            return text in TRUE_STRINGS
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != int(number) or abs(number) >= 2**53:  # beyond 2**53 a float is no longer an exact integer
                raise ValueError
            return int(number)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return tp(value).value if not isinstance(value, tp) else value
    except (ValueError, TypeError):
        name = getattr(tp, "__name__", str(tp))
        raise LlmkitError(f"{source}: {key}={value!r} is not a valid {name}") from None
    return value


def _fields(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, typing.Any) for f in dataclasses.fields(cls) if f.init}


# Keys that transformers renamed after the oldest version llmkit supports (5.17 has only gradient_checkpointing):
# a recipe written with the new name still runs there.
_OLDER_NAMES = {"activation_checkpointing": "gradient_checkpointing",
                "activation_checkpointing_kwargs": "gradient_checkpointing_kwargs"}


def build_args(dataclass_types: tuple, recipe: dict, overrides: dict, recipe_path: str | Path = "<recipe>",
               not_built: tuple = ()) -> tuple:
    """Fill each dataclass from recipe < overrides; unknown keys raise with a did-you-mean.

    The keys of `not_built` dataclasses are accepted but those classes are not made (e.g. `llmkit mine` reads an
    embed recipe without building training arguments, which check the hardware).
    """
    field_types = [_fields(cls) for cls in dataclass_types]
    known = set().union(*field_types, *(_fields(cls) for cls in not_built))
    values: dict = {}
    for source, mapping in ((str(recipe_path), recipe), ("command line", overrides)):
        for key, value in mapping.items():
            if key not in known and _OLDER_NAMES.get(key) in known:
                key = _OLDER_NAMES[key]
            if key not in known:
                raise LlmkitError(f"{source}: unknown key {key!r}{did_you_mean(key, known)}")
            tp = next((types_[key] for types_ in field_types if key in types_), None)
            if tp is not None:
                values[key] = _coerce(value, tp, key, source)
    instances = []
    for cls, types_ in zip(dataclass_types, field_types):
        kwargs = {k: v for k, v in values.items() if k in types_}
        try:
            instances.append(cls(**kwargs))
        except (ValueError, TypeError) as err:
            raise LlmkitError(f"{recipe_path}: {cls.__name__}: {err}") from None
    return tuple(instances)


def resolved_dict(instances: tuple) -> dict:
    """One flat dict of every field (later dataclasses win on shared keys), secrets removed."""
    flat: dict = {}
    for obj in instances:
        data = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        flat.update({k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(obj)}})
    return {k: v for k, v in flat.items() if not k.endswith("_token") or k in {"eos_token", "pad_token"}}


PACKAGES = ["torch", "transformers", "peft", "accelerate", "trl", "datasets", "deepspeed", "vllm",
            "sentence-transformers", "mteb", "tokenizers", "numpy", "scipy"]


def environment_info() -> dict:
    """llmkit version, git sha of the source tree, python and package versions: for run_info.json and `llmkit env`."""
    from llmkit import __version__

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent,
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if sha else None
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {"llmkit": __version__, "git_sha": sha, "git_dirty": dirty, "python": sys.version.split()[0],
            "packages": versions}


def save_run_config(run_dir: Path, instances: tuple, recipe_path: str | Path, argv: list[str], plan) -> None:
    """Write config.yaml (resolved; kept as it was on a resume) and run_info.json (identity, versions, command,
    resumes with the non-result keys they changed) into the run directory."""
    from llmkit.rundir import CONFIG, record_start

    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.fresh or not (run_dir / CONFIG).is_file():
        resolved = resolved_dict(instances)
        atomic_write_text(run_dir / CONFIG, yaml.safe_dump(resolved, sort_keys=True, default_flow_style=False))
    info = environment_info() | {"recipe": str(recipe_path), "argv": argv,
                                 "world_size": int(os.environ.get("WORLD_SIZE", 1))}
    write_json(run_dir / "run_info.json", record_start(run_dir, plan, info))
