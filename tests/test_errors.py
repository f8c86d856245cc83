"""Every exception edge-agent raises on purpose has EdgeAgentError as its base, and the tree
drawn in edge_agent/errors.py names each of them: a new one that skips the base or the
picture fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import edge_agent
from edge_agent.errors import EdgeAgentError

OUTSIDE = ("edge_agent.simulators",)
"""Test stand-ins, not the product: their errors stay their own."""


def _project_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(edge_agent.__path__, "edge_agent."):
        if module_info.name.startswith(OUTSIDE) or module_info.name == "edge_agent.__main__":
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")  # control flow inside one module
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_project_exception_has_the_one_base() -> None:
    exceptions = _project_exceptions()
    assert len(exceptions) > 40  # the walk found the tree, not an empty package
    strays = sorted(name for name, cls in exceptions.items() if not issubclass(cls, EdgeAgentError))
    assert strays == []


def test_the_tree_in_the_docstring_names_every_one() -> None:
    doc = importlib.import_module("edge_agent.errors").__doc__ or ""
    missing = sorted(
        name
        for name, cls in _project_exceptions().items()
        if cls is not EdgeAgentError and f" {cls.__name__} " not in doc.replace("\n", " \n ")
    )
    assert missing == []


def test_the_second_bases_are_kept() -> None:
    from edge_agent.common.http import ListenError
    from edge_agent.rules.store import StateStoreError
    from edge_agent.wire.alert import WireError

    assert issubclass(WireError, ValueError) and issubclass(WireError, EdgeAgentError)
    assert issubclass(StateStoreError, OSError) and issubclass(ListenError, OSError)


def test_the_tree_names_the_module_that_defines_each() -> None:
    """A row ``Name   path/to/module.py`` names the file the class is defined in: a class
    moved by a split (outbox/store.py → outbox/errors.py) must move in the picture too."""
    doc = importlib.import_module("edge_agent.errors").__doc__ or ""
    defined_in = {cls.__name__: cls.__module__ for cls in _project_exceptions().values()}
    rows = re.findall(r"── (\w+)\s+([\w/]+\.py)", doc)
    assert len(rows) > 20  # the rows were found
    wrong = sorted(
        (name, path)
        for name, path in rows
        if name in defined_in
        and ("edge_agent/" + path.removesuffix(".py")).removesuffix("/__init__")
        != defined_in[name].replace(".", "/")
    )
    assert wrong == []
