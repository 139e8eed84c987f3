"""The backend registry: every (rule, backend) pair, the classes it builds, and its refusals."""
import ast
from pathlib import Path

import pytest
import torch

import hopfield_masks
from hopfield_masks import (
    BACKENDS,
    MEMORY_CLASSES,
    RULES,
    ModernMemory,
    estimate_nbytes,
    make_memory,
    make_rule,
)
from hopfield_masks.backends import backends_of, memory_class


def test_the_registry_holds_exactly_the_backends_each_rule_has():
    for name, rule in RULES.items():
        assert backends_of(name) == tuple(b for b in BACKENDS if b in rule.backends), name
    assert {backend for _, backend in MEMORY_CLASSES} <= set(BACKENDS)
    assert {rule for rule, _ in MEMORY_CLASSES} == set(RULES)


@pytest.mark.parametrize("rule, backend", sorted(MEMORY_CLASSES))
def test_make_memory_builds_the_registered_class(rule, backend):
    memory = make_memory(rule, 16, backend)
    assert type(memory) is memory_class(rule, backend) is MEMORY_CLASSES[rule, backend]
    assert (memory.rule, memory.backend) == (rule, backend)


def test_the_modern_rule_works_with_the_default_backend(patterns_of):
    memory = make_memory("modern", 64)
    assert type(memory) is ModernMemory and memory.backend == "implicit"
    x = patterns_of(3, 4, 64)
    assert torch.equal(memory.store(x).recall(x).states, x)
    assert memory_class("modern", "implicit") is ModernMemory


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'dense', 'implicit'; got 'sparse'"):
        make_memory("hebbian", 8, "sparse")
    with pytest.raises(ValueError, match="backend must be one of 'dense', 'implicit'; got 'sparse'"):
        memory_class("hebbian", "sparse")
    with pytest.raises(ValueError, match="backend must be one of 'dense', 'implicit'; got 'auto'"):
        estimate_nbytes("hebbian", 8, "auto")
    with pytest.raises(ValueError, match="rule must be one of"):
        memory_class("oja", "dense")


@pytest.mark.parametrize("rule, backend, why", [
    ("storkey", "implicit", "no exact K×K form"), ("modern", "dense", "softmax retrieval has no d×d matrix")])
def test_a_backend_the_rule_lacks_says_why_and_which_to_use(rule, backend, why):
    other = backends_of(rule)[0]
    with pytest.raises(ValueError, match=f"rule '{rule}' has no {backend} backend \\(.*{why}\\); use backend='{other}'"):
        memory_class(rule, backend)


def test_make_rule_checks_names_and_values():
    assert make_rule("modern", beta=0.5).beta == 0.5
    with pytest.raises(ValueError, match="rule 'hebbian' takes no option 'beta'"):
        make_rule("hebbian", beta=1.0)
    with pytest.raises(ValueError, match="beta must be a number"):
        make_rule("modern", beta=-1.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        make_rule("oja")


def test_the_interface_imports_no_backend_and_no_factory():
    # imports run one way: memory <- dense/implicit/modern <- backends <- factory (tests/test_layout.py finds cycles)
    tree = ast.parse(Path(hopfield_masks.memory.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"hopfield_masks.factory", "hopfield_masks.backends", "hopfield_masks.dense",
                           "hopfield_masks.implicit", "hopfield_masks.modern"}


def test_the_factory_names_stay_importable_from_the_package_and_the_module():
    from hopfield_masks import factory

    for name in ("DEFAULT_MAX_BYTES", "default_backend", "estimate_nbytes", "load_memory", "make_memory"):
        assert getattr(hopfield_masks, name) is getattr(factory, name)
