"""NSMC test accuracy with and without MLM pretraining, under the same fine-tuning budget.

    .venv/bin/python benchmarks/nsmc_pretrain.py                                   # the full measurement
    .venv/bin/python benchmarks/nsmc_pretrain.py --pretrain-budget 5m --finetune-budget 3m --limit 20000

In one process, on ``--threads`` torch threads:

1. a WordPiece tokenizer is trained on ``unlabeled.txt`` (shared by both arms, so only the
   encoder's starting weights differ);
2. ``pretrain mlm``: the preset is pretrained by masked-language modelling on ``unlabeled.txt``
   for ``--pretrain-budget`` (15% masked, 80/10/10, documents packed into ``--max-length`` blocks);
3. ``train classify --pretrained RUN`` fine-tunes that encoder with a fresh head on ``train.tsv``
   for ``--finetune-budget``;
4. ``train classify --preset`` trains the same preset from random weights with the same budget,
   tokenizer, data, max length and batch size;
5. both classifiers are scored on ``test.tsv``.

The data is read at run time from ../shared/data/nsmc (relative to the repository root);
``--limit N`` takes a seeded random N rows of each file (for a quick end-to-end check).

Measured (2 shared Zen 3 cores, load average 10-13 from other work, so absolute speeds are several
times below an idle machine's; bert-mini, 8k WordPiece, max length 64, ``--limit 20000
--test-limit 5000``, i.e. 20k unlabeled / 20k training / 5k test reviews):
    * ``--pretrain-budget 5m --finetune-budget 3m``: MLM 127 steps x 64 blocks, held-out loss
      7.61 (the unigram entropy of this vocabulary on these texts is 7.47 nats) and masked-token
      accuracy 8.2% (the share of ``.``, the commonest token: the model still predicts it
      everywhere). Fine-tuned at 1e-4: 56.9% test accuracy; from scratch at 5e-4: 80.2%.
    * the same MLM run fine-tuned at 5e-4 (``--pretrained RUN --finetune-lr 5e-4``): 49.1%.
    * MLM with ``--batch-size 16`` for 5 minutes: 423 steps, held-out loss 7.63, accuracy 8.1%:
      4x the steps did not leave the plateau either.
  An encoder stopped on the unigram plateau is a worse start than random weights: its outputs no
  longer depend on the input, and fine-tuning must first undo that. The issue's own 40-minute
  run (2.3k steps, loss still near the unigram entropy) gave no gain (85.43% vs 85.46%), so the
  budget has to buy getting off the plateau before pretraining can pay.
  Head speed (``--head-speed 6``, same load): one training step of bert-mini on 64 x 64 tokens
  took 4.18 s with ``BertForMaskedLM``'s head over every position and 2.58 s with the head on
  the masked positions only (1.62x); bert-tiny on 8 x 64: 2.3x.

With the steps 2 idle cores afford in 60 minutes (6,152 of 64 x 64 tokens), MLM does leave the
plateau and gains 2 points (84.97% against 82.96% from scratch); ELECTRA and self-training did not
help. ``benchmarks/pretrain_recipes.py`` holds that comparison. Recipes considered (pretraining
choices are open; each is one change to this script or to ``MLMOptions``), with why:
    * ELECTRA-style replaced-token detection: a small generator proposes replacements and the
      encoder classifies every token as original/replaced, so all tokens give a training signal
      instead of 15%; ELECTRA-small reaches in ~1/4 of the compute what BERT-small needs.
    * Shorter blocks and more, smaller steps: NSMC reviews average ~20 WordPiece tokens, so
      ``--max-length 64`` blocks of packed reviews already cover them; ``--batch-size 32`` doubles
      the optimizer steps a budget allows, and getting off the unigram plateau is a matter of
      steps, not tokens.
    * A larger peak learning rate (1e-3 to 2e-3) with warmup: tiny BERTs tolerate it and leave the
      plateau sooner; the default here is 1e-3.
    * Whole-word (or whole-morpheme) masking: masking ``좋`` while ``##아요`` stays visible lets the
      model copy from the rest of the word; masking whole eojeol makes it use the sentence.
    * A morpheme-aware vocabulary (``--morphemes``): pieces that never cross a Kiwi boundary.
    * Distillation from the hashed n-gram classifier (88% in a minute) on the unlabeled reviews:
      soft sentiment labels for 468k texts are a task-specific pretraining signal MLM lacks.
    * Fine-tuning the pretrained encoder with a larger learning rate (1e-4 to 3e-4 instead of
      5e-5): a briefly pretrained 4x256 model is far from a converged KoBERT.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nsmc"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with unlabeled.txt, train.tsv, test.tsv")
    p.add_argument("--preset", default="bert-mini")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--max-length", type=int, default=64, help="tokens per pretraining block and per review")
    p.add_argument("--pretrain-budget", default="60m", help="MLM pretraining time (at most 60m for the target)")
    p.add_argument("--finetune-budget", default="10m", help="fine-tuning time of each arm")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--pretrain-batch-size", type=int, default=64)
    p.add_argument("--pretrain-warmup", type=float, default=0.05)
    p.add_argument("--morphemes", action="store_true", help="WordPiece over Kiwi morphemes")
    p.add_argument("--finetune-lr", type=float, default=1e-4, help="learning rate when fine-tuning the pretrained encoder")
    p.add_argument("--scratch-lr", type=float, default=5e-4, help="learning rate of the from-scratch arm")
    p.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch size (both arms)")
    p.add_argument("--limit", type=int, default=0, help="use a seeded random subset of this many rows of each file")
    p.add_argument("--test-limit", type=int, default=None, help="test reviews scored (default: --limit)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--omp-spin", action="store_true",
                   help="leave OMP_WAIT_POLICY alone; by default it is PASSIVE: idle OpenMP threads sleep instead of "
                        "spinning, without which a step on a machine shared with other work took 5 s instead of 0.1 s")
    p.add_argument("--head-speed", type=int, default=0, metavar="STEPS",
                   help="only time STEPS training steps of the sparse MLM head against BertForMaskedLM's full head")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pretrained", type=Path, default=None,
                   help="reuse this MLM run (and its tokenizer) instead of pretraining: to try fine-tuning recipes")
    p.add_argument("--skip-scratch", action="store_true", help="only the pretrained arm")
    p.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return p.parse_args()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def subset(rows: list, limit: int, seed: int) -> list:
    if not limit or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)


def prepare_data(args, work: Path) -> dict:
    """Read the three files (optionally a subset of each) and write what the tasks read."""
    from malmoi.data.readers import read_labelled, read_texts

    unlabeled = subset(read_texts(args.data_dir / "unlabeled.txt"), args.limit, args.seed)
    train = read_labelled(args.data_dir / "train.tsv", "document", "label")
    test = read_labelled(args.data_dir / "test.tsv", "document", "label")
    train_rows = subset(list(zip(train.texts, train.labels)), args.limit, args.seed)
    test_limit = args.limit if args.test_limit is None else args.test_limit
    test_rows = subset(list(zip(test.texts, test.labels)), test_limit, args.seed + 1)
    (work / "unlabeled.txt").write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
    clean = lambda t: t.replace("\t", " ").replace("\n", " ")  # noqa: E731
    (work / "train.tsv").write_text("document\tlabel\n" + "".join(f"{clean(t)}\t{y}\n" for t, y in train_rows),
                                    encoding="utf-8")
    return {"unlabeled": work / "unlabeled.txt", "train": work / "train.tsv", "n_unlabeled": len(unlabeled),
            "n_train": len(train_rows), "test_texts": [t for t, _ in test_rows], "test_labels": [y for _, y in test_rows]}


def test_accuracy(run: Path, texts, labels) -> float:
    from malmoi.use.classifier import TextClassifier

    return TextClassifier.from_run(run).evaluate(texts, labels, batch_size=256).report.accuracy


def finetune(args, data: dict, out: Path, **model) -> dict:
    import malmoi

    started = time.perf_counter()
    result = malmoi.train(task="classify", data=data["train"], text="document", label="label", out=out,
                          valid_split=0.02, max_length=args.max_length, batch_size=args.batch_size,
                          epochs=100, time_budget=args.finetune_budget, seed=args.seed, progress=False,
                          say=say, **model)
    accuracy = test_accuracy(out, data["test_texts"], data["test_labels"])
    return {"test_accuracy": accuracy, "valid_accuracy": result.metrics.get("accuracy"), "steps": result.steps,
            "epochs": round(result.steps * args.batch_size / max(1, data["n_train"]), 3),
            "samples_per_s": round(result.samples_per_s, 1), "seconds": round(time.perf_counter() - started, 1)}


def head_speed(args) -> None:
    """Seconds per training step (forward, backward, AdamW) of the same MLM with the prediction head
    over every position (``BertForMaskedLM``) and over the masked ones only (``SparseMaskedLM``),
    alternating in one process on identical batches of real packed reviews."""
    import statistics

    import torch

    from malmoi.data.batching import MLMCollator
    from malmoi.data.datasets import PackedTextDataset
    from malmoi.models.mlm import build_mlm
    from malmoi.text.subword import train_tokenizer

    texts = subset((args.data_dir / "unlabeled.txt").read_text(encoding="utf-8").splitlines(), 20000, args.seed)
    tok = train_tokenizer(texts, vocab_size=args.vocab_size)
    blocks = PackedTextDataset(texts, tok, args.max_length)
    collate = MLMCollator.from_tokenizer(tok)
    torch.manual_seed(args.seed)
    model = build_mlm(args.preset, tok)
    arms = {"full head": lambda b: model.mlm(**b).loss, "masked only": lambda b: model(**b).loss}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times: dict[str, list[float]] = {name: [] for name in arms}
    n = args.pretrain_batch_size
    for step in range(args.head_speed + 1):
        batch = collate([blocks[(step * n + i) % len(blocks)] for i in range(n)])
        for name, loss_of in arms.items():
            t = time.perf_counter()
            loss_of(batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # the first step warms up allocators and kernels
                times[name].append(time.perf_counter() - t)
    full, sparse = (statistics.median(times[k]) for k in arms)
    print(f"{args.preset}, vocab {len(tok)}, batch {n} x {args.max_length} tokens, {args.threads} threads, "
          f"median of {args.head_speed} steps: full head {full * 1000:.0f} ms/step, masked positions only "
          f"{sparse * 1000:.0f} ms/step, {full / sparse:.2f}x")


def pretrain_arm(args, data: dict, work: Path) -> tuple[float, Path, dict]:
    """Train the shared tokenizer, then pretrain: (tokenizer seconds, MLM run, its summary)."""
    from malmoi.tasks import train
    from malmoi.text.subword import train_tokenizer

    t = time.perf_counter()
    unlabeled = (work / "unlabeled.txt").read_text(encoding="utf-8").splitlines()
    train_tokenizer(unlabeled, kind="wordpiece", vocab_size=args.vocab_size, morphemes=args.morphemes,
                    out=work / "tokenizer")
    tokenizer_s = time.perf_counter() - t
    say(f"tokenizer ({args.vocab_size} WordPiece{' over morphemes' if args.morphemes else ''}) in {tokenizer_s:.0f} s")

    t = time.perf_counter()
    mlm = train(task="mlm", data=data["unlabeled"], out=work / "mlm", preset=args.preset, tokenizer=work / "tokenizer",
                   max_length=args.max_length, batch_size=args.pretrain_batch_size, lr=args.pretrain_lr,
                   warmup=args.pretrain_warmup, epochs=100, time_budget=args.pretrain_budget, seed=args.seed,
                   eval_every=500, max_valid=1000, progress=False, say=say)
    pretrain_s = time.perf_counter() - t
    meta = json.loads((work / "mlm" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    blocks = mlm.steps * args.pretrain_batch_size
    pretrained = {"steps": mlm.steps, "blocks": blocks, "seconds": round(pretrain_s, 1),
                  "mlm_loss": round(mlm.metrics.get("loss", float("nan")), 4),
                  "masked_accuracy": round(mlm.metrics.get("accuracy", float("nan")), 4),
                  "blocks_per_s": round(mlm.samples_per_s, 1), "planned_steps": meta.get("planned_steps")}
    say(f"pretrained: {pretrained}")
    return tokenizer_s, work / "mlm", pretrained


def main() -> None:
    args = parse_args()
    if not args.omp_spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch's OpenMP starts, so before importing it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.head_speed:
        return head_speed(args)

    work = args.out or Path(tempfile.mkdtemp(prefix="nsmc_pretrain."))
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(args, work)
    say(f"{data['n_unlabeled']} unlabeled, {data['n_train']} training and {len(data['test_texts'])} test reviews "
        f"in {work}")

    if args.pretrained is None:
        tokenizer_s, mlm_run, pretrained = pretrain_arm(args, data, work)
    else:
        tokenizer_s, mlm_run, pretrained = 0.0, args.pretrained, {"reused": str(args.pretrained)}
    tokenizer = work / "tokenizer" if args.pretrained is None else args.pretrained

    results = {"pretrained": finetune(args, data, work / "cls-pretrained", pretrained=mlm_run,
                                      lr=args.finetune_lr)}
    say(f"fine-tuned from MLM: {results['pretrained']}")
    if not args.skip_scratch:
        results["scratch"] = finetune(args, data, work / "cls-scratch", preset=args.preset, lr=args.scratch_lr,
                                      tokenizer=tokenizer)
        say(f"from scratch: {results['scratch']}")

    report = {"args": {k: str(v) for k, v in vars(args).items()}, "tokenizer_seconds": round(tokenizer_s, 1),
              "mlm": pretrained, **results, "work": str(work)}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    print(f"NSMC, {args.preset}, max length {args.max_length}, {len(data['test_texts'])} test reviews, "
          f"{args.threads} threads")
    if "steps" in pretrained:
        print(f"  MLM pretraining {args.pretrain_budget}: {pretrained['steps']} steps x {args.pretrain_batch_size} "
              f"blocks, held-out masked-token loss {pretrained['mlm_loss']}, accuracy {pretrained['masked_accuracy']}")
    else:
        print(f"  MLM pretraining: reused {args.pretrained}")
    for name, r in results.items():
        print(f"  {name:>10} + fine-tune {args.finetune_budget}: test accuracy {r['test_accuracy']:.4f} "
              f"({r['steps']} steps, {r['epochs']} epochs)")
    if "scratch" in results:
        gain = results["pretrained"]["test_accuracy"] - results["scratch"]["test_accuracy"]
        print(f"  pretraining gain: {gain * 100:+.2f} points")


if __name__ == "__main__":
    main()
