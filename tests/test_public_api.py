"""The public API's names: what `import blurbkit` offers at run time is what type checkers see."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import blurbkit


def test_the_type_stub_names_every_public_name_from_its_module():
    stub = Path(blurbkit.__file__).with_suffix(".pyi")
    imports = [(alias, node.module) for node in ast.parse(stub.read_text()).body
               if isinstance(node, ast.ImportFrom) for alias in node.names]
    assert all(alias.asname == alias.name for alias, _ in imports)  # `import X as X`: re-exported
    assert {alias.name: module for alias, module in imports} == blurbkit._LAZY
    listed = [node.value for node in ast.parse(stub.read_text()).body
              if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"]
    assert [ast.literal_eval(value) for value in listed] == [blurbkit.__all__]  # `from blurbkit import *` alike


def test_every_public_name_is_listed_and_loads():
    assert set(blurbkit.__all__) <= set(dir(blurbkit))
    for name in blurbkit.__all__:
        assert getattr(blurbkit, name).__module__ == blurbkit._LAZY[name]


def test_the_package_says_it_is_typed_and_ships_its_stub():
    package = Path(blurbkit.__file__).parent
    assert (package / "py.typed").is_file()
    pyproject = package.parents[1] / "pyproject.toml"
    if pyproject.is_file():  # a source checkout: what the wheel will carry
        shipped = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["blurbkit"]
        assert "py.typed" in shipped and "*.pyi" in shipped
