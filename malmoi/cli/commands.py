"""Imports every command module so that it registers on the Typer apps."""
from . import text  # noqa: F401
from . import data  # noqa: F401
from . import train  # noqa: F401
from . import use  # noqa: F401
from . import demo  # noqa: F401
from . import seq2seq  # noqa: F401
from . import pretrain  # noqa: F401
from . import lm  # noqa: F401
