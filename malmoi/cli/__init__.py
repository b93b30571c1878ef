"""The command line: a thin Typer layer. Each submodule parses, calls the library, prints.

Errors raised as ``MalmoiError`` become one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import os
import sys

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

# Command modules register themselves on the apps above.
from malmoi.cli import commands  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    from malmoi.errors import MalmoiError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, standalone_mode=False)
    except MalmoiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            sys.exit(130)
        raise
