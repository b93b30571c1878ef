"""The Typer apps every command module registers on: ``malmoi`` and its groups."""
from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="malmoi (말모이): Korean-first NLP, from sentences to trained models and back to text.",
)
train_app = typer.Typer(no_args_is_help=True, help="Train a model into a run directory.")
pretrain_app = typer.Typer(no_args_is_help=True, help="Pretrain an encoder on unlabelled text.")
tokenizer_app = typer.Typer(no_args_is_help=True, help="Train subword tokenizers.")
data_app = typer.Typer(no_args_is_help=True, help="Download public corpora.")
app.add_typer(train_app, name="train")
app.add_typer(pretrain_app, name="pretrain")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(data_app, name="data")
