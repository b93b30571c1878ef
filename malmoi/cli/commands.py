"""Imports every command module so that it registers on the Typer apps."""
from . import text  # noqa: F401
from . import data  # noqa: F401
