"""`malmoi train seq2seq`, and `malmoi generate`, `chat`, `attention` for any text-generating run.

The three commands load runs through ``generators.load_generator``, which picks the model
family from the run's ``malmoi.json``; new families plug in there, not here.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from malmoi.errors import MalmoiError
from malmoi.cli.apps import app, train_app
from malmoi.cli.options import options_command
from malmoi.cli.train import print_result
from malmoi.tasks.pairs import Seq2SeqOptions


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = " ".join(f"{k} {m[k]:.2f}" for k in ("loss", "perplexity", "bleu", "chrf", "rouge_l") if k in m)
    return (f"{scores} on {result.valid_examples} validation pairs; {result.steps} steps ({result.stopped_by}), "
            f"{result.samples_per_s:.0f} samples/s, {result.seconds:.0f} s → {result.run}")


@options_command(train_app, Seq2SeqOptions, "seq2seq",
                 short_help="Question → answer seq2seq (LSTM or BART): malmoi train seq2seq --data chatbot.csv "
                            "--source Q --target A --preset lstm-bahdanau --out runs/chat")
def seq2seq(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train an LSTM encoder-decoder (optionally with attention) or, with --preset bart-mini, a
    transformer encoder-decoder into a run directory; validation reports loss, perplexity, BLEU
    and chrF and shows sample answers.

    Example: malmoi train seq2seq --data chatbot.csv --source Q --target A --preset lstm-bahdanau --out runs/chat
    """
    from malmoi.tasks import train

    print_result(train(task="seq2seq", **options, progress=not as_json), as_json, summary_line)


BEAMS_HELP = "Beam width (1 = greedy; default: the run's own, greedy unless its training chose beams)."


@app.command(short_help='Answer or continue texts: malmoi generate runs/chat "오늘 날씨 어때?" --beams 4')
def generate(
    run: Path = typer.Argument(..., help="A run directory of a text-generating model."),
    texts: List[str] = typer.Argument(..., help="Input texts."),
    beams: Optional[int] = typer.Option(None, "--beams", help=BEAMS_HELP),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Most tokens generated "
                                                                              "(default: the model's)."),
    greedy: bool = typer.Option(False, "--greedy", help="Always pick the most likely token (the default "
                                                        "without sampling options)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Sample from the smallest set of tokens whose "
                                                                "probability reaches p."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sample with logits divided by T."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", help="Penalise tokens "
                                                                                          "already generated."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling: same seed, same text."),
    stream: bool = typer.Option(False, "--stream", help="Print the text as it is generated."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: text, tokens, score per input."),
) -> None:
    """Generate one output per input text with a trained run: greedy, beam search (--beams) or, for
    transformer runs, sampling (--top-k / --top-p / --temperature) and --stream.

    Example: malmoi generate runs/chat "오늘 날씨 어때?" "배고파" --beams 4
    """
    from malmoi.use import load_generator
    from malmoi.cli.lm import beam_option, print_generations

    print_generations(load_generator(run), texts, **beam_option(beams), max_new_tokens=max_new_tokens, greedy=greedy,
                      top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty,
                      seed=seed, stream=stream, as_json=as_json)


@app.command(short_help="Talk to a trained run: malmoi chat runs/chat")
def chat(
    run: Path = typer.Argument(..., help="A run directory of a text-generating model."),
    beams: Optional[int] = typer.Option(None, "--beams", help=BEAMS_HELP),
) -> None:
    """Interactive chat: type a message, read the answer; an empty line is ignored, Ctrl-D (EOF),
    Ctrl-C or /quit ends it.

    Example: malmoi chat runs/chat --beams 3
    """
    import sys

    from malmoi.cli.lm import beam_option
    from malmoi.use import load_generator

    beam = beam_option(beams)
    generator = load_generator(run)
    interactive = sys.stdin.isatty()
    if interactive:
        print("말을 걸어 보세요 (Ctrl-D or /quit to leave).", file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print(file=sys.stderr)
            return
        line = line.strip()
        if line in ("/quit", "/exit"):
            return
        if not line:
            continue
        try:
            print(generator.generate([line], **beam)[0].text, flush=True)
        except MalmoiError as e:  # one bad message (too long …) must not end the conversation
            print(f"error: {e}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return


@app.command(short_help='Attention heatmap of one answer: malmoi attention runs/chat "오늘 날씨 어때?" --out att.png')
def attention(
    run: Path = typer.Argument(..., help="A run directory of a model with attention."),
    text: str = typer.Argument(..., help="The input text."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    beams: Optional[int] = typer.Option(None, "--beams", help=BEAMS_HELP),
    layer: Optional[int] = typer.Option(None, "--layer", help="Transformer runs: decoder layer whose "
                                                              "cross-attention is drawn (default: the last)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the tokens and weights as JSON."),
) -> None:
    """Draw where each generated token attended in the source (rows: generated, columns: source;
    transformer runs: one decoder layer's cross-attention averaged over its heads).

    Example: malmoi attention runs/chat "오늘 날씨 어때?" --out att.png
    """
    import inspect

    from malmoi.cli.lm import beam_option
    from malmoi.use import load_generator, save_attention_png

    beam = beam_option(beams)
    generator = load_generator(run)
    if not hasattr(generator, "attention"):
        raise MalmoiError("E429", f"{run}: this kind of model does not expose attention weights")
    options = {} if layer is None else {"layer": layer}
    if options and "layer" not in inspect.signature(generator.attention).parameters:
        raise MalmoiError("E280", f"{run}: --layer picks a transformer decoder layer; this model has one attention")
    amap = generator.attention(text, **beam, **options)
    save_attention_png(amap, out)
    if as_json:
        print(json.dumps({**amap.__dict__, "png": str(out)}, ensure_ascii=False))
    else:
        print(f"{amap.text}\n→ {out}")


def evaluate_generator(run: Path, meta: dict, data: Path, source: str | None, target: str | None, errors: int,
                       as_json: bool) -> None:
    """``malmoi eval`` on a text generator: its default decoding answers every source of ``data``, scored
    against the targets (``training.text_metrics``); ``errors`` shows the answers furthest from theirs."""
    from malmoi.data.readers import read_pairs
    from malmoi.training.text_metrics import rouge_l, text_scores
    from malmoi.use import load_generator

    columns = meta.get("columns", {})
    source, target = source or columns.get("source"), target or columns.get("target")
    if not source or not target:
        raise MalmoiError("E236", f"{run} was not trained on pairs; give --source and --target columns")
    generator = load_generator(run)
    if getattr(generator, "continues_prompt", False):
        raise MalmoiError("E409", f"{run} continues texts rather than answering them; train it with --source and "
                                  "--target to score its answers")
    sources, targets, skipped = read_pairs(data, source, target)
    answers = [a.text for a in generator.generate(sources)]
    scores = {**text_scores(answers, targets), "pairs": len(sources), "skipped_empty": skipped}
    worst = sorted(range(len(answers)), key=lambda i: rouge_l(answers[i], targets[i]))[:errors] if errors else []
    if as_json:
        scores["errors"] = [{"source": sources[i], "target": targets[i], "answer": answers[i]} for i in worst]
        print(json.dumps(scores, ensure_ascii=False))
        return
    print(f"BLEU {scores['bleu']:.2f}   chrF {scores['chrf']:.2f}   ROUGE-L {scores['rouge_l']:.2f}   "
          f"exact {scores['exact']:.1%}   on {len(sources)} pairs" + (f" ({skipped} empty skipped)" if skipped else ""))
    for i in worst:
        print(f"\n{sources[i]}\n  target: {targets[i]}\n  answer: {answers[i]}")
