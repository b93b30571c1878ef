"""The models a server holds: ``NAME=RUN`` specs → loaded runs, each with what it can do."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from malmoi.errors import MalmoiError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class ModelSpec:
    """One model to serve: the name clients use and its run directory."""

    name: str
    run: Path


def parse_specs(specs: Sequence[str | os.PathLike]) -> list[ModelSpec]:
    """``RUN`` (named after its folder) or ``NAME=RUN``; one name twice is refused."""
    out: list[ModelSpec] = []
    for spec in specs:
        text = str(spec)
        name, sep, run = text.partition("=")
        if sep and not name:
            raise MalmoiError("E602", f"cannot serve {text!r}: the name before '=' is empty")
        if not sep or not NAME.match(name):  # "runs/a=b" is a path, not a name
            name, run = Path(text).name or Path(text).resolve().name, text
        if not run or not NAME.match(name):
            raise MalmoiError("E602", f"cannot serve {text!r}: give RUN or NAME=RUN (names: letters, digits, . _ -)")
        out.append(ModelSpec(name, Path(run)))
    if not out:
        raise MalmoiError("E602", "give at least one run directory to serve")
    seen: dict[str, Path] = {}
    for spec in out:
        if spec.name in seen:
            raise MalmoiError("E601", f"two models are named {spec.name!r} ({seen[spec.name]} and {spec.run}); "
                                      f"name them with NAME=RUN")
        seen[spec.name] = spec.run
    return out


@dataclass
class ServedModel:
    """A loaded run and how the server may use it."""

    name: str
    run: Path
    loaded: Any
    """What ``malmoi.use.load`` returned."""
    meta: dict = field(default_factory=dict)

    @property
    def classifies(self) -> bool:
        return hasattr(self.loaded, "predict_proba")

    @property
    def tags(self) -> bool:
        return hasattr(self.loaded, "tag")

    @property
    def answers(self) -> bool:
        return hasattr(self.loaded, "answer")

    @property
    def generates(self) -> bool:
        from malmoi.use import is_generator

        return is_generator(self.loaded)

    @property
    def continues_prompt(self) -> bool:
        return bool(getattr(self.loaded, "continues_prompt", False))

    @property
    def streams_tokens(self) -> bool:
        """Whether ``stream`` yields piece by piece (GPT, BART) rather than one whole answer."""
        from malmoi.use import BartGenerator, LMGenerator

        return isinstance(self.loaded, (LMGenerator, BartGenerator))

    def card(self) -> dict:
        """The model as ``GET /v1/models`` lists it (OpenAI's shape, with malmoi's fields)."""
        meta = self.meta
        created = int((self.run / "malmoi.json").stat().st_mtime) if (self.run / "malmoi.json").exists() else 0
        return {
            "id": self.name, "object": "model", "created": created, "owned_by": "malmoi",
            "task": meta.get("task"), "architecture": meta.get("architecture"), "preset": meta.get("preset"),
            "labels": list(getattr(self.loaded, "labels", []) or []),
            "routes": [r for r, ok in (("classify", self.classifies), ("tag", self.tags), ("answer", self.answers),
                                       ("generate", self.generates), ("completions", self.continues_prompt))
                       if ok] + ["tokenize"],
            "streams": "tokens" if self.streams_tokens else ("whole" if self.generates else None),
        }


def load_models(specs: Sequence[ModelSpec]) -> dict[str, ServedModel]:
    from malmoi.use import load

    models = {}
    for spec in specs:
        loaded = load(spec.run)
        if hasattr(loaded, "predict_proba"):
            loaded.predict_proba(["준비"])  # loads what loads lazily (an n-gram run's Kiwi: seconds) before "ready"
        elif hasattr(loaded, "tag"):
            loaded.tag(["준비"])
        models[spec.name] = ServedModel(spec.name, spec.run, loaded, getattr(loaded, "meta", {}) or {})
    return models


def check_specs(specs: Sequence[ModelSpec]) -> None:
    """Refuse, before the server binds, a run that is missing or that this version cannot load."""
    from malmoi.runs import read_meta
    from malmoi.use import LOADERS

    for spec in specs:
        meta = read_meta(spec.run)
        if meta.get("architecture") not in LOADERS and meta.get("task") not in LOADERS:
            raise MalmoiError("E413", f"{spec.run} holds a {meta.get('architecture') or meta.get('task')!r} model, "
                                      f"which this version cannot serve")
