"""The table of error codes: every code raised in the package is listed once, with one meaning, and
docs/errors.md is the table as users read it."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import malmoi
from malmoi.errors import ERRORS, GROUPS, HINTS, MalmoiError, errors_markdown

PACKAGE = Path(malmoi.__file__).parent
ERRORS_PY = PACKAGE / "errors.py"
DOCS = PACKAGE.parent / "docs" / "errors.md"
CODE = re.compile(r"E\d{3}")


def codes_in_source() -> dict[str, list[str]]:
    """Every code written in the package outside errors.py (a string literal "E123", or an attribute
    such as ``Errors.E123``) → where."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ERRORS_PY:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.Attribute):
                text = node.attr
            else:
                continue
            if CODE.fullmatch(text):
                found.setdefault(text, []).append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def table_keys(name: str) -> list[str]:
    """The keys of the dict literal assigned to ``name`` in errors.py, as written (duplicates kept)."""
    for node in ast.parse(ERRORS_PY.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == name:
            assert isinstance(node.value, ast.Dict), f"{name} must be a dict literal"
            return [ast.literal_eval(k) for k in node.value.keys]
    raise AssertionError(f"errors.py assigns no {name}")


def test_every_code_used_in_the_package_is_in_the_table():
    used = codes_in_source()
    assert len(used) > 50  # the scan sees the raise sites
    missing = {code: where for code, where in used.items() if code not in ERRORS}
    assert not missing, f"codes raised but not listed in malmoi.errors.ERRORS: {missing}"


def test_every_code_in_the_table_is_used():
    unused = sorted(set(ERRORS) - set(codes_in_source()))
    assert not unused, f"codes listed in malmoi.errors.ERRORS that nothing raises: {unused}"


@pytest.mark.parametrize("name", ["ERRORS", "HINTS"])
def test_no_code_is_defined_twice(name):
    keys = table_keys(name)
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"defined twice in {name} (a dict literal keeps only the last): {twice}"


def test_codes_are_well_formed_grouped_and_meaningful():
    for code, meaning in ERRORS.items():
        assert CODE.fullmatch(code) and code[:2] in GROUPS, code
        assert meaning.strip() and "|" not in meaning and "\n" not in meaning, code
    assert list(ERRORS) == sorted(ERRORS)  # listed in order, so each group is one block
    assert set(HINTS) <= set(ERRORS), sorted(set(HINTS) - set(ERRORS))
    assert all(h.strip() and "|" not in h for h in HINTS.values())


def test_readme_codes_keep_their_meaning():
    assert "missing" in ERRORS["E101"]
    assert "empty" in ERRORS["E102"]
    assert "UTF-8" in ERRORS["E103"]
    assert "column" in ERRORS["E104"]
    assert "label" in ERRORS["E105"]
    assert "fields" in ERRORS["E106"] and "quotes" in ERRORS["E106"]
    assert "JSON" in ERRORS["E107"]
    assert "download" in ERRORS["E501"] and "HTTP" in ERRORS["E502"] and "checksum" in ERRORS["E503"]


def test_the_users_list_is_the_table():
    assert DOCS.read_text(encoding="utf-8") == errors_markdown(), (
        "docs/errors.md differs from malmoi.errors.ERRORS; regenerate it with `python -c "
        "\"from malmoi.errors import errors_markdown; print(errors_markdown(), end='')\" > docs/errors.md`")
    listed = re.findall(r"^\| (E\d{3}) \|", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert listed == list(ERRORS)


def test_an_unknown_code_is_refused():
    with pytest.raises(ValueError, match="E999"):
        MalmoiError("E999", "no such code")
    with pytest.raises(ValueError, match="'file not found'"):
        MalmoiError("file not found", "E101")  # arguments swapped


def test_a_known_code_keeps_its_form():
    e = MalmoiError("E101", "file not found: x.tsv")
    assert (e.code, e.message, str(e)) == ("E101", "file not found: x.tsv", "file not found: x.tsv [E101]")
    assert e.args == ("file not found: x.tsv",)


def test_errors_imports_nothing_heavy():
    code = ("import sys, malmoi.errors; heavy = {'torch', 'transformers', 'numpy'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
