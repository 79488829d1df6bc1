"""Every reason ingest and the engine give for refusing a file is said in the coordinator's language.

A reason is a template marked for the catalogue (gettext_noop) with its values as parameters, never a sentence
put together in code: an f-string or a concatenation is one sentence per value, which no catalogue holds, so a
Korean page showed it in English (found on the upload page with a file whose file meta and data set name
different SOP Instance UIDs). This reads the sources of trials/deid and trials/ingest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.utils import translation

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "trials" / "deid").glob("*.py"), *(ROOT / "trials" / "ingest").glob("*.py")])
REJECTIONS = {"DeidRejected", "Refused"}


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _calls(name_of) -> list[tuple[str, ast.Call]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and name_of(node.func) is not None:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return found


def _name(func: ast.AST) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def test_every_rejection_reason_is_a_template_not_a_sentence_made_in_code():
    made = []
    for where, call in _calls(lambda f: _name(f) if _name(f) in REJECTIONS else None):
        reason = call.args[1] if len(call.args) > 1 else None
        if isinstance(reason, ast.JoinedStr) or (isinstance(reason, ast.BinOp) and _literal(reason) is None):
            made.append(f"{where}: {ast.unparse(reason)[:80]}")
    assert not made, "reasons not marked as catalogue templates:\n" + "\n".join(made)


def _templates() -> set[str]:
    """The templates marked for the catalogue, and the literal reasons of rejections (the same sentence marked
    elsewhere is translated for both)."""
    marked = {
        _literal(call.args[0])
        for _where, call in _calls(lambda f: "gettext_noop" if _name(f) == "gettext_noop" else None)
        if call.args
    }
    literal = {
        _literal(call.args[1])
        for _where, call in _calls(lambda f: _name(f) if _name(f) in REJECTIONS else None)
        if len(call.args) > 1
    }
    return (marked | literal) - {None}


@pytest.mark.parametrize("msgid", sorted(_templates()))
def test_every_reason_template_is_in_the_korean_catalogue(msgid):
    with translation.override("ko"):
        assert translation.gettext(msgid) != msgid
