"""The command line: a thin Typer layer. Each submodule parses, calls the library, prints.

Errors raised as ``MalmoiError`` become one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import os
import sys

from malmoi.cli.apps import app

# Each command module registers its commands on the apps when imported (in the order --help lists them).
from malmoi.cli import text  # noqa: F401,I001
from malmoi.cli import data  # noqa: F401
from malmoi.cli import train  # noqa: F401
from malmoi.cli import use  # noqa: F401
from malmoi.cli import compress  # noqa: F401
from malmoi.cli import demo  # noqa: F401
from malmoi.cli import seq2seq  # noqa: F401
from malmoi.cli import pretrain  # noqa: F401
from malmoi.cli import lm  # noqa: F401
from malmoi.cli import tag  # noqa: F401
from malmoi.cli import qa  # noqa: F401
from malmoi.cli import inspect  # noqa: F401
from malmoi.cli import serve  # noqa: F401
from malmoi.cli import explore  # noqa: F401


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
