"""The package's shape: imports point one way, every module is documented, no function sprawls."""

import ast
import os
import re

from helpers import ROOT

PACKAGE = os.path.join(ROOT, "lstm_mnist")


def _modules():
    return sorted(name[:-3] for name in os.listdir(PACKAGE)
                  if name.endswith(".py") and name != "__init__.py")


def _documented_order():
    """The modules in the order the package docstring lists them."""
    docstring = ast.get_docstring(ast.parse(open(os.path.join(PACKAGE, "__init__.py")).read()))
    return list(dict.fromkeys(re.findall(r"`(\w+)`\s+\(", docstring)))


def _imported_modules(module):
    tree = ast.parse(open(os.path.join(PACKAGE, module + ".py")).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("lstm_mnist."):
                found.add(node.module.split(".")[1])
            elif node.module == "lstm_mnist":
                found.update(alias.name for alias in node.names)
    return found - {module}


def test_every_module_is_listed_in_the_package_docstring_and_the_module_map():
    order = _documented_order()
    assert sorted(order) == _modules()
    module_map = open(os.path.join(ROOT, "docs", "developing.md"), encoding="utf-8").read()
    assert [m for m in _modules() if f"`{m}.py`" not in module_map] == []


def test_imports_point_one_way_down_the_documented_order():
    order = _documented_order()
    for position, module in enumerate(order):
        later = _imported_modules(module) - set(order[:position])
        assert not later, f"{module} imports {sorted(later)}, listed after it"


def test_no_function_is_longer_than_sixty_lines():
    for module in _modules():
        tree = ast.parse(open(os.path.join(PACKAGE, module + ".py")).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{module}.{node.name} has {length} lines"
