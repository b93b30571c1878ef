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
from malmoi.cli import app, train_app
from malmoi.cli.train import print_result


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = " ".join(f"{k} {m[k]:.2f}" for k in ("loss", "perplexity", "bleu", "chrf") if k in m)
    return (f"{scores} on {result.valid_examples} validation pairs; {result.steps} steps ({result.stopped_by}), "
            f"{result.samples_per_s:.0f} samples/s, {result.seconds:.0f} s → {result.run}")


@train_app.command(short_help="Question → answer seq2seq (LSTM or BART): malmoi train seq2seq --data chatbot.csv "
                              "--source Q --target A --preset lstm-bahdanau --out runs/chat")
def seq2seq(
    data: Path = typer.Option(..., "--data", help="Training file (CSV, TSV or JSONL with a header)."),
    source: str = typer.Option(..., "--source", help="Column holding the input text."),
    target: str = typer.Option(..., "--target", help="Column holding the output text."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (refused if it exists, unless --resume)."),
    preset: str = typer.Option("lstm-bahdanau", "--preset", help="lstm (no attention), lstm-bahdanau, lstm-luong, "
                                                                 "bart-mini (transformer encoder-decoder)."),
    valid: Optional[Path] = typer.Option(None, "--valid", help="Validation file with the same columns."),
    valid_split: float = typer.Option(0.1, "--valid-split", help="Without --valid: fraction of pairs held out."),
    units: str = typer.Option("subword", "--units", help="Text → ids: subword (BPE over Kiwi morphemes), "
                                                         "morphemes, words or chars."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="A trained subword tokenizer folder to use."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Vocabulary built from the training pairs."),
    max_source_length: int = typer.Option(64, "--max-source-length", help="Source tokens kept."),
    max_target_length: int = typer.Option(64, "--max-target-length", help="Target tokens kept; most generated."),
    teacher_forcing: float = typer.Option(1.0, "--teacher-forcing", help="Probability of feeding the gold "
                                                                         "previous token in training."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training data."),
    batch_size: int = typer.Option(64, "--batch-size", help="Pairs per batch."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: 2e-3; bart-mini 1e-3)."),
    time_budget: str = typer.Option("0", "--time-budget", help="Stop after this long: 90s, 10m, 1h (0 = no limit)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate every N steps (0 = each epoch)."),
    patience: int = typer.Option(0, "--patience", help="Stop after N evaluations without improvement (0 = off)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Batches per optimizer step."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast."),
    seed: int = typer.Option(42, "--seed", help="Seed for weights, data order and the validation split."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (0 = torch's default) "
                                                               "[default: 1 for LSTM presets, which gain little "
                                                               "from more; 0 for bart-mini]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train an LSTM encoder-decoder (optionally with attention) or, with --preset bart-mini, a
    transformer encoder-decoder into a run directory; validation reports loss, perplexity, BLEU
    and chrF and shows sample answers.

    Example: malmoi train seq2seq --data chatbot.csv --source Q --target A --preset lstm-bahdanau --out runs/chat
    """
    from malmoi.tasks import train

    result = train(
        task="seq2seq", data=data, source=source, target=target, out=out, preset=preset, valid=valid,
        valid_split=valid_split, units=units, tokenizer=tokenizer, vocab_size=vocab_size,
        max_source_length=max_source_length, max_target_length=max_target_length, teacher_forcing=teacher_forcing,
        epochs=epochs, batch_size=batch_size, lr=lr, time_budget=time_budget, eval_every=eval_every,
        patience=patience, grad_accum=grad_accum, bf16=bf16, seed=seed, num_threads=threads, resume=resume,
        progress=not as_json,
    )
    print_result(result, as_json, summary_line)


def _check_beams(beams: int) -> None:
    if beams < 1:
        raise MalmoiError("E224", f"--beams must be at least 1, got {beams}")


@app.command(short_help='Answer or continue texts: malmoi generate runs/chat "오늘 날씨 어때?" --beams 4')
def generate(
    run: Path = typer.Argument(..., help="A run directory of a text-generating model."),
    texts: List[str] = typer.Argument(..., help="Input texts."),
    beams: int = typer.Option(1, "--beams", help="Beam width (1 = greedy)."),
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
    from malmoi.cli.lm import print_generations

    _check_beams(beams)
    print_generations(load_generator(run), texts, beams=beams, max_new_tokens=max_new_tokens, greedy=greedy,
                      top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty,
                      seed=seed, stream=stream, as_json=as_json)


@app.command(short_help="Talk to a trained run: malmoi chat runs/chat")
def chat(
    run: Path = typer.Argument(..., help="A run directory of a text-generating model."),
    beams: int = typer.Option(1, "--beams", help="Beam width (1 = greedy)."),
) -> None:
    """Interactive chat: type a message, read the answer; an empty line is ignored, Ctrl-D (EOF),
    Ctrl-C or /quit ends it.

    Example: malmoi chat runs/chat --beams 3
    """
    import sys

    from malmoi.use import load_generator

    _check_beams(beams)
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
            print(generator.generate([line], beams=beams)[0].text, flush=True)
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
    beams: int = typer.Option(1, "--beams", help="Beam width (1 = greedy)."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Transformer runs: decoder layer whose "
                                                              "cross-attention is drawn (default: the last)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the tokens and weights as JSON."),
) -> None:
    """Draw where each generated token attended in the source (rows: generated, columns: source;
    transformer runs: one decoder layer's cross-attention averaged over its heads).

    Example: malmoi attention runs/chat "오늘 날씨 어때?" --out att.png
    """
    import inspect

    from malmoi.use import load_generator, save_attention_png

    _check_beams(beams)
    generator = load_generator(run)
    if not hasattr(generator, "attention"):
        raise MalmoiError("E429", f"{run}: this kind of model does not expose attention weights")
    options = {} if layer is None else {"layer": layer}
    if options and "layer" not in inspect.signature(generator.attention).parameters:
        raise MalmoiError("E280", f"{run}: --layer picks a transformer decoder layer; this model has one attention")
    amap = generator.attention(text, beams=beams, **options)
    save_attention_png(amap, out)
    if as_json:
        print(json.dumps({**amap.__dict__, "png": str(out)}, ensure_ascii=False))
    else:
        print(f"{amap.text}\n→ {out}")
