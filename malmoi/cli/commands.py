"""Imports every command module so that it registers on the Typer apps."""
from malmoi.cli import text  # noqa: F401
from malmoi.cli import data  # noqa: F401
from malmoi.cli import train  # noqa: F401
from malmoi.cli import use  # noqa: F401
from malmoi.cli import demo  # noqa: F401
from malmoi.cli import seq2seq  # noqa: F401
from malmoi.cli import pretrain  # noqa: F401
from malmoi.cli import lm  # noqa: F401
