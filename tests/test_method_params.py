"""Hyperparameter documentation at the declaration: the parser, the completeness of the built-in
methods' documentation, ``laicbench list methods --params`` and the generated docs page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import squash, table_rows

from laicbench.api import registry
from laicbench.api.method import Method
from laicbench.api.params import AT_LEAST_ONE, Options, param_docs, param_rows

PARAMS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


@dataclass
class _Base(Method):
    """A base declaring shared parameters."""

    size: int = 3
    """How many, in the base."""
    mode: str = "a"
    """The mode, as the base says."""


@dataclass
class _Child(_Base):
    """A method over the base."""

    mode: str = "b"
    """The mode, as the child says
    (over two lines)."""
    weight: float = field(default=1.0, metadata={"doc": "From the field's metadata."})
    bare: int = 0
    note = "a class attribute documented like a field is not a hyperparameter"
    """Not a parameter."""

    param_constraints = {"size": AT_LEAST_ONE, "mode": Options(("a", "b"))}
    dataset_settings = {"cifar10": {"size": 7}}

    def fit_predict(self, features, n_clusters, seed):
        raise NotImplementedError


def test_docs_come_from_the_declaration_through_the_bases():
    docs = param_docs(_Child)
    assert docs == {
        "size": "How many, in the base.",
        "mode": "The mode, as the child says\n(over two lines).",
        "weight": "From the field's metadata.",
    }
    assert "bare" not in docs and "note" not in docs
    assert param_docs(_Base)["mode"] == "The mode, as the base says."


def test_rows_give_type_default_constraint_and_per_dataset_values():
    rows = {r.name: r for r in param_rows(_Child)}
    assert list(rows) == ["size", "mode", "weight", "bare"]
    assert (rows["size"].type, rows["size"].default, rows["size"].allowed) == ("int", "3", ">= 1")
    assert rows["size"].per_dataset == "cifar10 7"
    assert rows["mode"].allowed == "one of 'a', 'b'" and rows["mode"].default == "'b'"
    assert rows["mode"].doc == "The mode, as the child says (over two lines)."
    assert rows["bare"].doc == ""


@pytest.mark.parametrize("name", registry.methods.names())
def test_every_hyperparameter_of_every_method_is_documented(name):
    cls = registry.methods.get(name)
    undocumented = [r.name for r in param_rows(cls) if not r.doc]
    assert not undocumented, (
        f"{name}: document {', '.join(undocumented)} with an attribute docstring under the field"
    )


def test_list_methods_params_prints_each_parameter_with_its_doc(cli):
    result = cli("list", "methods", "--params")
    assert result.status == 0, result.err
    rows = {(r[0], r[1]) for r in table_rows(result.out) if len(r) == 5}
    assert ("eta", "float") in rows and ("n_init", "int") in rows
    doc = param_docs(registry.methods.get("ours"))["eta"]
    assert squash(" ".join(doc.split())) in squash(result.out)


def test_list_params_of_datasets_is_a_one_line_error(cli):
    result = cli("list", "datasets", "--params")
    assert result.status == 2
    assert result.err.count("\n") == 1 and "--params" in result.err


def test_the_parameters_page_is_generated_and_up_to_date(cli):
    result = cli("list", "methods", "--params", "--format", "markdown")
    assert result.status == 0, result.err
    assert PARAMS_PAGE.read_text() == result.out, (
        "docs/parameters.md is out of date: regenerate it with "
        "laicbench list methods --params --format markdown > docs/parameters.md"
    )
    for name in registry.methods.names():
        assert f"\n## {name}\n" in result.out
