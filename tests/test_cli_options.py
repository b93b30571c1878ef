"""The training commands' flags are their option dataclasses' fields (``cli.options``), and the
command line starts without torch, transformers or Kiwi."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import typer.main

import malmoi.tasks
from malmoi.cli import app
from malmoi.cli.options import NOT_FLAGS, field_docs
from malmoi.models.presets import presets_for
from malmoi.tasks import ClassifyOptions, LMOptions, MLMOptions, QAOptions, Seq2SeqOptions, TagOptions

COMMANDS = {  # task: (command path, options class, required flags with values)
    "classify": (("train", "classify"), ClassifyOptions,
                 ["--data", "d.tsv", "--text", "document", "--label", "label", "--out", "runs/x"]),
    "seq2seq": (("train", "seq2seq"), Seq2SeqOptions,
                ["--data", "d.csv", "--source", "Q", "--target", "A", "--out", "runs/x"]),
    "lm": (("train", "lm"), LMOptions, ["--data", "d.txt", "--out", "runs/x"]),
    "mlm": (("pretrain", "mlm"), MLMOptions, ["--data", "d.txt", "--out", "runs/x"]),
    "qa": (("train", "qa"), QAOptions, ["--data", "d.json", "--out", "runs/x"]),
    "tag": (("train", "tag"), TagOptions, ["--data", "d.tsv", "--out", "runs/x"]),
}
MODULES = {"classify": "train", "seq2seq": "seq2seq", "lm": "lm", "mlm": "pretrain", "qa": "qa", "tag": "tag"}
"""The module under ``malmoi.cli`` that defines each task's command."""
EXTRAS = {"as_json", "help"}
"""Parameters of the commands that are not option fields."""

TODAYS_FLAGS = {  # what the README and ../shared/checks/contract.sh type: none may disappear
    "classify": "--data --text --label --out --valid --valid-split --preset --pretrained --tokenizer --vocab-size "
                "--epochs --batch-size --lr --max-length --time-budget --eval-every --patience --grad-accum --bf16 "
                "--seed --resume --json",
    "seq2seq": "--data --source --target --out --preset --valid --valid-split --units --tokenizer --vocab-size "
               "--max-source-length --max-target-length --teacher-forcing --epochs --batch-size --lr --time-budget "
               "--eval-every --patience --grad-accum --bf16 --seed --threads --resume --json",
    "lm": "--data --out --column --preset --tokenizer --vocab-size --block-size --valid-split --sample-prompt "
          "--epochs --batch-size --lr --time-budget --eval-every --patience --grad-accum --bf16 --seed --resume --json",
    "mlm": "--data --out --column --preset --tokenizer --vocab-size --morphemes --max-length --no-pack --valid-split "
           "--max-valid --mlm-probability --epochs --batch-size --lr --warmup --time-budget --eval-every --grad-accum "
           "--bf16 --seed --resume --json",
    "qa": "--data --out --valid --valid-split-by-article --preset --pretrained --tokenizer --vocab-size --max-length "
          "--doc-stride --max-answer-length --max-question-length --epochs --batch-size --lr --time-budget --seed "
          "--resume --json",
    "tag": "--data --out --format --valid --valid-split --preset --pretrained --tokenizer --vocab-size --max-length "
           "--epochs --batch-size --lr --time-budget --seed --resume --json",
}
HEAVY = ("torch", "transformers", "kiwipiepy")


def command_params(task: str) -> dict:
    (group, name), _, _ = COMMANDS[task]
    command = typer.main.get_command(app).commands[group].commands[name]
    return {p.name: p for p in command.params}


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


@pytest.mark.parametrize("task", COMMANDS)
def test_every_flag_is_a_field_with_its_default_and_doc(task):
    options = COMMANDS[task][1]
    fields = {f.name: f for f in dataclasses.fields(options)}
    docs = field_docs(options)
    params = command_params(task)
    for name, param in params.items():
        if name in EXTRAS:
            continue
        assert name in fields, f"{param.opts} has no field in {options.__name__}"
        field = fields[name]
        assert task not in NOT_FLAGS.get(name, ()), f"{name} is a flag and exempt"
        assert param.opts == [flag_of(field)]
        assert param.help and docs[name].split()[0] in param.help, name
        if field.default is dataclasses.MISSING:
            assert param.required, name
        elif flag_of(field).startswith("--no-"):
            assert param.default is (not field.default), name
        else:
            assert param.default == field.default and type(param.default) is type(field.default), name
    for name in fields:
        assert name in params or task in NOT_FLAGS.get(name, ()), f"{options.__name__}.{name}: no flag, not exempt"


def test_every_field_has_a_doc_and_every_exemption_a_field():
    for task, (_, options, _) in COMMANDS.items():
        docs = field_docs(options)
        assert [f.name for f in dataclasses.fields(options) if not docs.get(f.name)] == []
    for name, tasks in NOT_FLAGS.items():
        for task in tasks:
            assert name in {f.name for f in dataclasses.fields(COMMANDS[task][1])}, (name, task)


@pytest.mark.parametrize("task", COMMANDS)
def test_todays_flags_are_all_there(task):
    spelled = {opt for p in command_params(task).values() for opt in p.opts + p.secondary_opts}
    assert set(TODAYS_FLAGS[task].split()) <= spelled


@pytest.mark.parametrize("task", COMMANDS)
def test_the_command_passes_the_dataclass_defaults(task, cli, monkeypatch):
    calls = []
    monkeypatch.setattr(malmoi.tasks, "train", lambda **kw: calls.append(kw))
    monkeypatch.setattr(f"malmoi.cli.{MODULES[task]}.print_result", lambda *a, **k: None)
    (_, options, required) = COMMANDS[task]
    code, _, err = cli(*COMMANDS[task][0], *required, "--json")
    assert code == 0, err
    [given] = calls
    assert given.pop("task") == task and given.pop("progress") is False
    for name, value in given.items():
        field = options.__dataclass_fields__[name]
        if field.default is not dataclasses.MISSING:
            assert value == field.default, name


def test_flags_reach_the_options(cli, monkeypatch):
    calls = []
    monkeypatch.setattr(malmoi.tasks, "train", lambda **kw: calls.append(kw))
    monkeypatch.setattr("malmoi.cli.seq2seq.print_result", lambda *a, **k: None)
    monkeypatch.setattr("malmoi.cli.pretrain.print_result", lambda *a, **k: None)
    code, _, err = cli("pretrain", "mlm", *COMMANDS["mlm"][2], "--no-pack", "--epochs", "2", "--time-budget", "10m")
    assert code == 0, err
    assert calls[-1]["pack"] is False and calls[-1]["epochs"] == 2 and calls[-1]["time_budget"] == "10m"
    assert calls[-1]["progress"] is True
    code, _, err = cli("train", "seq2seq", *COMMANDS["seq2seq"][2], "--threads", "2", "--preset", "bart-mini")
    assert code == 0, err
    assert calls[-1]["num_threads"] == 2 and calls[-1]["preset"] == "bart-mini"


def fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def test_imports_load_no_heavy_module():
    proc = fresh_python("import json, sys, malmoi.cli, malmoi.tasks\n"
                        "from malmoi.tasks import ClassifyOptions, Seq2SeqOptions, LMOptions, MLMOptions\n"
                        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_help_loads_no_heavy_module_and_lists_the_presets():
    proc = fresh_python("import json, sys\nfrom malmoi.cli import main\n"
                        "try:\n    main(['train', 'classify', '--help'])\nexcept SystemExit:\n    pass\n"
                        f"print('HEAVY', json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert proc.returncode == 0, proc.stderr
    help_text, _, loaded = proc.stdout.rpartition("HEAVY ")
    assert json.loads(loaded) == []
    assert "Example: malmoi train classify" in help_text and "--vocab-size" in help_text
    assert all(f"{name}:" in help_text for name in presets_for("classify"))


def test_seq2seq_help_lists_the_presets(cli):
    code, out, _ = cli("train", "seq2seq", "--help")
    assert code == 0
    assert all(f"{name}:" in out for name in presets_for("seq2seq")) and "--threads" in out
