"""Tests of the task-inference objectives: entropy H and the superfluous-neuron objective G."""
import math

import pytest
import torch

from supsup_core.infer.objectives import OBJECTIVES, Objective, entropy, superfluous


def test_entropy_matches_the_formula_on_the_real_outputs(generator):
    logits = torch.randn(5, 14, generator=generator)
    p = logits[:, :10].softmax(1)
    expected = -(p * p.log()).sum(1).mean()
    assert torch.allclose(entropy(logits, 10), expected, atol=1e-6)


def test_entropy_of_uniform_logits_is_log_of_the_class_count():
    assert entropy(torch.zeros(3, 7), 7).item() == pytest.approx(math.log(7), rel=1e-6)


def test_superfluous_value_is_logsumexp_and_only_extra_logits_get_gradient(generator):
    logits = torch.randn(4, 15, generator=generator, requires_grad=True)
    value = superfluous(logits, 10)
    assert torch.allclose(value, torch.logsumexp(logits, 1).mean())
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.all(grad[:, :10] == 0)
    assert torch.all(grad[:, 10:] > 0)


def test_registry_holds_both_objectives():
    assert set(OBJECTIVES) == {"entropy", "superfluous"}


def test_objective_calls_the_registered_function(generator):
    logits = torch.randn(2, 12, generator=generator)
    assert torch.equal(Objective("superfluous", 10)(logits), superfluous(logits, 10))
    assert torch.equal(Objective("entropy", 10)(logits), entropy(logits, 10))


def test_unknown_objective_is_an_error():
    with pytest.raises(ValueError, match="objective must be one of"):
        Objective("kl", 10)


def test_nonpositive_real_outputs_is_an_error():
    with pytest.raises(ValueError, match="real_outputs must be > 0"):
        Objective("entropy", 0)


def test_output_size_smaller_than_the_classes_is_an_error():
    with pytest.raises(ValueError, match="fewer than the 10 classes"):
        Objective("entropy", 10)(torch.zeros(2, 5))


def test_superfluous_without_extra_outputs_is_an_error():
    with pytest.raises(ValueError, match="needs extra outputs"):
        Objective("superfluous", 10)(torch.zeros(2, 10))
