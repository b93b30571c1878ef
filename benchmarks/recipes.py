"""``--set NAME=VALUE`` options shared by the benchmarks that try training recipes."""
from __future__ import annotations

import json


def add_recipe_option(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another training option, e.g. --set vocab_size=4000 --set lr=2e-3 (a recipe to try)")


def recipe(settings: list[str]) -> dict:
    """``--set`` options as ``malmoi.train`` keywords; values read as JSON where they parse (numbers, objects)."""
    options = {}
    for item in settings:
        name, _, value = item.partition("=")
        try:
            options[name.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[name.replace("-", "_")] = value
    return options
