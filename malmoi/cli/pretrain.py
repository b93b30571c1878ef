"""`malmoi pretrain mlm`: parse, call ``tasks.train``, print a summary; the flags are the fields of
``MLMOptions`` (``cli.options``)."""
from __future__ import annotations

import typer

from malmoi.cli.apps import pretrain_app
from malmoi.cli.options import options_command
from malmoi.cli.train import print_result
from malmoi.tasks.mlm import MLMOptions


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = (f"masked-token accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} (perplexity {m['perplexity']:.1f})"
              if "accuracy" in m else " ".join(f"{k} {v:.4f}" for k, v in m.items()))
    return (f"{scores} on {result.valid_examples} validation texts; {result.steps} steps "
            f"({result.stopped_by}), {result.samples_per_s:.0f} blocks/s, {result.seconds:.0f} s → {result.run}")


@options_command(pretrain_app, MLMOptions, "mlm",
                 short_help="BERT encoder by masked-language modelling: malmoi pretrain mlm --data "
                            "unlabeled.txt --preset bert-mini --out runs/mlm")
def mlm(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Pretrain a BERT encoder on unlabelled text into a run directory that `train classify --pretrained` fine-tunes.

    Example: malmoi pretrain mlm --data unlabeled.txt --preset bert-mini --time-budget 30m --out runs/mlm
    """
    from malmoi.tasks import train

    print_result(train(task="mlm", **options, progress=not as_json), as_json, summary_line)
