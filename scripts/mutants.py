"""Mutants of a Python module made with ``ast`` (issue 26): the sites of one source where a
small realistic bug can be injected, and the source with one of them applied. Used by
scripts/mutate.py (the kinds of change are listed in its docstring)."""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

BINOP_FLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.BitAnd: ast.BitOr,
              ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
CMP_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
AUG_FLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass(frozen=True)
class Site:
    """One mutation: the node (by its index in ``ast.walk`` order) and what to do to it."""

    index: int
    kind: str
    change: str
    line: int
    function: str
    source: str
    col: int = 0

    def key(self, module: str) -> str:
        return f"{module}::{self.function}::{self.change}@{self.col}::{self.source}"


def _skipped_ids(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: annotations, decorators, f-strings, raise arguments,
    docstrings."""
    skip: set[int] = set()

    def mark(node):
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for dec in node.decorator_list:
                mark(dec)
            for a in node.args.args + node.args.posonlyargs + node.args.kwonlyargs:
                mark(a.annotation)
            for a in (node.args.vararg, node.args.kwarg):
                if a is not None:
                    mark(a.annotation)
        elif isinstance(node, ast.ClassDef):
            for dec in node.decorator_list:
                mark(dec)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, (ast.JoinedStr, ast.Raise)):
            mark(node)
    return skip


def _functions(tree: ast.AST) -> dict[int, str]:
    """id(node) -> qualified name of the innermost function or class holding it."""
    owner: dict[int, str] = {}

    def visit(node, name):
        for child in ast.iter_child_nodes(node):
            sub = name
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                sub = f"{name}.{child.name}" if name != "<module>" else child.name
            owner[id(child)] = sub
            visit(child, sub)

    visit(tree, "<module>")
    return owner


def _node_changes(node: ast.AST) -> list[tuple[str, str]]:
    """(kind, change) for every mutation this node admits."""
    out = []
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op in BINOP_FLIP:
            out.append(("binop", f"{op.__name__}->{BINOP_FLIP[op].__name__}"))
        if op in (ast.Add, ast.Sub):
            out.append(("drop", "drop right term"))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        out.append(("unary", f"remove {type(node.op).__name__}"))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_FLIP:
                out.append(("compare", f"{i}:{type(op).__name__}->{CMP_FLIP[type(op)].__name__}"))
    elif isinstance(node, ast.BoolOp):
        out.append(("boolop", f"{type(node.op).__name__}->"
                    f"{'Or' if isinstance(node.op, ast.And) else 'And'}"))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append(("int", f"{node.value}->{node.value + 1}"))
    elif isinstance(node, ast.Constant) and type(node.value) is float and node.value != 0.0:
        out.append(("float", f"{node.value!r}->x1.1"))
    elif isinstance(node, ast.AugAssign) and type(node.op) in AUG_FLIP:
        out.append(("augassign", f"{type(node.op).__name__}=->{AUG_FLIP[type(node.op)].__name__}="))
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return", "return None"))
    return out


def sites(source: str) -> list[Site]:
    tree = ast.parse(source)
    skip, owner = _skipped_ids(tree), _functions(tree)
    lines = source.splitlines()
    out = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for kind, change in _node_changes(node):
            seg = ast.unparse(node).replace("\n", " ")
            line = getattr(node, "lineno", 0)
            text = lines[line - 1].strip() if line else ""
            # the source line tells a constant's place; a long node is its own context
            where = text if len(seg) < 12 else seg
            out.append(Site(index, kind, change, line, owner.get(id(node), "<module>"),
                            where[:100], getattr(node, "col_offset", 0)))
    return out


def mutate(source: str, site: Site) -> str:
    """The module's source with one site mutated (re-parsed, so the tree is fresh)."""
    tree = ast.parse(source)
    for index, node in enumerate(ast.walk(tree)):
        if index == site.index:
            break
    else:  # pragma: no cover - sites() and mutate() walk the same tree
        raise RuntimeError(f"site {site} not found")
    if site.kind == "binop":
        node.op = BINOP_FLIP[type(node.op)]()
    elif site.kind == "drop":
        _replace(tree, node, node.left)
    elif site.kind == "unary":
        _replace(tree, node, node.operand)
    elif site.kind == "compare":
        i = int(site.change.split(":")[0])
        node.ops[i] = CMP_FLIP[type(node.ops[i])]()
    elif site.kind == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif site.kind == "int":
        node.value = node.value + 1
    elif site.kind == "float":
        node.value = node.value * 1.1
    elif site.kind == "augassign":
        node.op = AUG_FLIP[type(node.op)]()
    elif site.kind == "return":
        node.value = ast.Constant(None)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, copy.deepcopy(new))
                return
            if isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [copy.deepcopy(new) if v is old else v for v in value])
                return
