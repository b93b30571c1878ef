"""`malmoi train lm`: parse, call ``tasks.train``, print a summary; the flags are the fields of
``LMOptions`` (``cli.options``).

``print_generations`` is the body of ``malmoi generate`` once sampling and streaming options are
parsed: runs whose generator has ``stream`` / sampling (language models) take them all, others
(the LSTM seq2seq) take beams and a length only.
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

import typer

from malmoi.errors import MalmoiError
from malmoi.cli.apps import train_app
from malmoi.cli.options import options_command
from malmoi.cli.train import print_result
from malmoi.tasks.lm import LMOptions


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    return (f"loss {m.get('loss', float('nan')):.4f} perplexity {m.get('perplexity', float('nan')):.2f} on "
            f"{result.valid_examples} validation texts; {result.steps} steps ({result.stopped_by}), "
            f"{result.samples_per_s:.0f} blocks/s, {result.seconds:.0f} s → {result.run}")


@options_command(train_app, LMOptions, "lm",
                 short_help="GPT-style language model on plain text: malmoi train lm --data corpus.txt "
                            "--preset gpt-mini --out runs/gpt")
def lm(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a causal language model (GPT-2 preset) into a run directory; validation reports the loss
    per token and perplexity on held-out documents and continues a sample prompt.

    Example: malmoi train lm --data corpus.txt --preset gpt-mini --out runs/gpt --time-budget 10m
    """
    from malmoi.tasks import train

    print_result(train(task="lm", **options, progress=not as_json), as_json, summary_line)


def beam_option(beams: int | None) -> dict:
    """``beams=`` for a generator's calls: left out when not given, so each run decodes its default way."""
    if beams is None:
        return {}
    if beams < 1:
        raise MalmoiError("E224", f"--beams must be at least 1, got {beams}")
    return {"beams": beams}


def print_generations(generator, texts: Sequence[str], *, beams: int | None = None,
                      max_new_tokens: int | None = None,
                      greedy: bool = False, top_k: int | None = None, top_p: float | None = None,
                      temperature: float | None = None, repetition_penalty: float | None = None,
                      seed: int | None = None, stream: bool = False, as_json: bool = False) -> None:
    """What ``malmoi generate`` prints for ``texts`` with ``generator`` (from ``load_generator``);
    ``beams=None`` decodes the run's default way."""
    sampling = {k: v for k, v in dict(top_k=top_k, top_p=top_p, temperature=temperature,
                                      repetition_penalty=repetition_penalty, seed=seed).items() if v is not None}
    beam = beam_option(beams)
    if greedy:
        sampling["greedy"] = True
    if sampling and not getattr(generator, "samples", False):
        raise MalmoiError("E275", "this run answers greedily or with --beams only; sampling options, --seed and "
                                  "--repetition-penalty need a transformer or language-model run")
    if stream and not hasattr(generator, "stream"):
        raise MalmoiError("E275", "this generator cannot --stream")
    prefix = getattr(generator, "continues_prompt", False)
    if stream:
        if as_json:
            raise MalmoiError("E274", "--stream prints text as it comes; leave out --json")
        for text in texts:
            print(text if prefix else (f"{text}\t" if len(texts) > 1 else ""), end="", flush=True)
            for piece in generator.stream(text, **beam, max_new_tokens=max_new_tokens, **sampling):
                sys.stdout.write(piece)
                sys.stdout.flush()
            print()
        return
    answers = generator.generate(texts, **beam, max_new_tokens=max_new_tokens, **sampling)
    if as_json:
        # matched / similarity exist for retrieved answers only
        print(json.dumps([{k: v for k, v in a.__dict__.items() if v is not None} for a in answers], ensure_ascii=False))
        return
    for a in answers:
        if prefix:
            print(a.source + a.text)
        else:
            print(a.text if len(answers) == 1 else f"{a.source}\t{a.text}")
