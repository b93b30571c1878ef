"""The flags of the training commands (``train classify``, ``train seq2seq``, ``train lm``,
``pretrain mlm``), built from the tasks' option dataclasses, so that a flag, its help and its
default are written once, next to the code that uses them.

Each field of a command's ``Options`` class is one flag: ``--`` + the field name with ``-``, or
``field(metadata={"flag": ...})`` where the spelling differs (``num_threads`` is ``--threads``;
a bool field whose flag starts ``--no-`` is set to False by it: ``pack`` is ``--no-pack``). The
help is the field's doc line, the default the dataclass's. Fields that are Python-only are listed
in ``NOT_FLAGS``; ``tests/test_cli_options.py`` holds every field to one or the other.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import sys
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import typer

EVERY_TASK = ("classify", "seq2seq", "lm", "mlm", "qa", "tag")

NOT_FLAGS: dict[str, tuple[str, ...]] = {
    # field: the tasks whose command leaves it to Python callers
    "model_overrides": EVERY_TASK,  # a dict of preset config fields (tests shrink models with it)
    "progress": EVERY_TASK,  # follows --json: log lines and bars would interleave with the JSON
    "num_workers": EVERY_TASK,  # 0 keeps resume exact
    # loop settings whose defaults serve every preset
    "log_every": EVERY_TASK,
    "decay_to_budget": EVERY_TASK,
    "eval_share": EVERY_TASK,
    "weight_decay": EVERY_TASK,
    "grad_clip": EVERY_TASK,
    "max_steps": EVERY_TASK,
    "eval_batch_size": EVERY_TASK,
    "warmup": ("classify", "seq2seq", "lm", "qa", "tag"),  # --warmup: pretrain mlm only
    "num_threads": ("classify", "lm", "mlm", "qa", "tag"),  # --threads: train seq2seq only (LSTMs want one thread)
    "patience": ("mlm",),  # pretraining stops by epochs or time
    "max_valid": ("lm",),  # --max-valid: pretrain mlm only
    # what the task shows or builds beyond its preset
    "dropout": ("classify", "tag"),
    "eval_samples": ("seq2seq",),
    "sample_tokens": ("lm",),
}
"""Option fields that are not command-line flags, with the commands (by task name) they are absent
from; every other field of a training command's ``Options`` is a flag."""


def field_docs(cls: type) -> dict[str, str]:
    """Each field's doc line (the string literal right after it) in the source of ``cls`` and of
    its bases; a subclass's doc replaces its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            docs.update(_own_field_docs(klass))
    return docs


@lru_cache(maxsize=None)
def _own_field_docs(cls: type) -> dict[str, str]:
    node = _class_statement(cls)
    docs: dict[str, str] = {}
    for stmt, after in zip(node.body, node.body[1:]) if node else ():
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


@lru_cache(maxsize=None)
def _module_ast(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def _class_statement(cls: type) -> ast.ClassDef | None:
    """The ``class`` statement of ``cls`` in its module's source (each module parsed once)."""
    node: Any = _module_ast(sys.modules[cls.__module__].__file__)
    for name in cls.__qualname__.split("."):
        node = next((n for n in node.body if isinstance(n, ast.ClassDef) and n.name == name), None)
        if node is None:
            return None
    return node


@dataclass(frozen=True)
class Flag:
    """One field of an ``Options`` class as a command-line option."""

    field: str
    """The field, also the parameter name of the command."""
    name: str
    """What users type: ``--vocab-size``, ``--threads``."""
    type: Any
    """What the command line reads: ``Path``, ``int``, ``Optional[float]`` …"""
    default: Any
    """The dataclass default; ``...`` when the field is required."""
    help: str
    inverted: bool = False
    """A ``--no-…`` flag of a bool field that is True by default: giving it sets the field False."""
    text_or_number: bool = False
    """The field takes a number or text (``time_budget``: ``"10m"`` or seconds): the command line
    passes the text on, and the default stays the dataclass's number."""

    def parameter(self) -> inspect.Parameter:
        """The parameter of the Typer command: a ``typer.Option`` with this flag, help and default."""
        default = (not self.default) if self.inverted else self.default
        decl = self.name
        if self.type is bool and default is True and not self.inverted:
            decl = f"{self.name}/--no-{self.name[2:]}"  # a bool that is on by default needs an off switch
        parser = {"parser": _unchanged} if self.text_or_number else {}
        return inspect.Parameter(self.field, inspect.Parameter.KEYWORD_ONLY, annotation=self.type,
                                 default=typer.Option(default, decl, help=self.help, **parser))

    def value(self, given: Any) -> Any:
        """The field's value from what the command line parsed."""
        return (not given) if self.inverted else given


def option_flags(options: type, task: str) -> list[Flag]:
    """The flags of ``task``'s command: every field of the dataclass ``options`` not in
    ``NOT_FLAGS`` for ``task``; the task's own fields first, then the training loop's."""
    hints = typing.get_type_hints(options)
    inherited = {name for base in options.__mro__[1:] for name in getattr(base, "__dataclass_fields__", {})}
    fields = sorted(dataclasses.fields(options), key=lambda f: f.name in inherited)  # stable: keeps field order
    kept = [f for f in fields if task not in NOT_FLAGS.get(f.name, ())]
    names = {f.name: f.metadata.get("flag", "--" + f.name.replace("_", "-")) for f in kept}
    docs = field_docs(options)
    flags = []
    for f in kept:
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{options.__name__}.{f.name} has no command-line default; list it in NOT_FLAGS")
        else:
            default = ...
        cli_type = _cli_type(hints[f.name], default, f"{options.__name__}.{f.name}")
        members = typing.get_args(hints[f.name])
        flags.append(Flag(f.name, names[f.name], cli_type, default, _help(docs.get(f.name, ""), names),
                          inverted=cli_type is bool and names[f.name].startswith("--no-"),
                          text_or_number=str in members and (int in members or float in members)))
    return flags


def _unchanged(value: Any) -> Any:
    return value


def _cli_type(hint: Any, default: Any, where: str) -> Any:
    """What the command line reads for a field annotated ``hint``: a path for ``str | os.PathLike``,
    a string for a value that may be a number or text (``time_budget``: ``"10m"`` or seconds)."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    members = [a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)]
    optional = len(members) < (len(typing.get_args(hint)) if union else 1) or default is None
    if any(a is os.PathLike or a is Path for a in members):
        base = Path
    elif len(members) == 1 and members[0] in (bool, int, float, str):
        base = members[0]
    elif str in members and all(a in (int, float, str) for a in members):
        base = str
    else:
        raise TypeError(f"{where}: {hint} has no command-line form; list it in NOT_FLAGS")
    return Optional[base] if optional else base


_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
"""Text Rich's markup would take for a style tag (``[default: …]``) and drop from the help."""


def _help(doc: str, names: dict[str, str]) -> str:
    """A field's doc line as flag help: one line, a field it names in double backquotes written as
    its flag (``resume`` → --resume), other quoted code plain."""
    text = re.sub(r"``([^`]+)``", lambda m: names.get(m[1], m[1]), " ".join(doc.split()))
    return _escape_markup(text)


def _escape_markup(text: str) -> str:
    if typer.core.DEFAULT_MARKUP_MODE != "rich":
        return text
    return _MARKUP.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)


def options_command(app: typer.Typer, options: type, task: str, *, short_help: str) -> Callable:
    """Register the decorated function ``f(options: dict, **extras)`` as a command of ``app``
    whose flags are ``option_flags(options, task)`` followed by the function's own (``--json``);
    ``f`` receives the parsed fields as ``options``. Its docstring is the command's help, followed
    by the presets of ``task``."""
    from malmoi.models.presets import presets_help

    flags = option_flags(options, task)

    def register(func: Callable) -> Callable:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "options"]

        def command(**given: Any) -> Any:
            return func({f.field: f.value(given.pop(f.field)) for f in flags}, **given)

        command.__name__, command.__qualname__ = func.__name__, func.__qualname__
        command.__module__, command.__doc__ = func.__module__, func.__doc__
        command.__signature__ = inspect.Signature([f.parameter() for f in flags] + own)  # type: ignore[attr-defined]
        doc = inspect.cleandoc(func.__doc__ or "")
        presets = _escape_markup(presets_help(task, sep="\n"))
        app.command(short_help=short_help, help=f"{doc}\n\nPresets:\n{presets}")(command)
        return command

    return register
