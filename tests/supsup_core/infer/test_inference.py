"""Tests of task inference: packed α-gradients against the naive float superposition, one-shot and binary."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from supsup_core.infer.inference import (
    INFERENCE,
    alpha_gradient,
    alpha_gradient_naive,
    infer_task_binary,
    infer_task_oneshot,
)
from supsup_core.infer.objectives import Objective
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn.models import ModelConfig, build_model


def _model(name: str, num_tasks: int, seed: int):
    width = 16 if name == "bnnet" else 12
    config = ModelConfig(name=name, input_shape=(1, 4, 5), output_size=14, num_tasks=num_tasks, width=width,
                         score_init="kaiming_uniform")
    return build_model(config, torch.Generator().manual_seed(seed))


def _inputs(seed: int, n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, 4, 5, generator=torch.Generator().manual_seed(seed))


@settings(derandomize=True, deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**20), k=st.integers(1, 9), name=st.sampled_from(["lenet", "bnnet"]),
       objective=st.sampled_from(["entropy", "superfluous"]), subset=st.booleans())
def test_packed_gradient_equals_the_naive_float_superposition(seed, k, name, objective, subset):
    # Weight masks (lenet) and neuron masks (bnnet); all tasks or a shuffled subset of them.
    model = _model(name, k, seed)
    packed = PackedMasks.from_model(model)
    candidates = torch.randperm(k, generator=torch.Generator().manual_seed(seed))[: max(1, k // 2)] if subset else None
    obj = Objective(objective, 10)
    x = _inputs(seed)
    fast = alpha_gradient(model, x, packed, candidates, obj)
    naive = alpha_gradient(model, x, packed.unpack(), candidates, obj)
    assert torch.equal(fast.candidates, naive.candidates)
    assert fast.objective == pytest.approx(naive.objective, rel=1e-5, abs=1e-6)
    assert torch.allclose(fast.gradient, naive.gradient, rtol=1e-4, atol=1e-6)


def test_naive_gradient_is_the_autograd_of_alpha_weighted_masks():
    model = _model("lenet", 3, 0)
    packed = PackedMasks.from_model(model)
    result = alpha_gradient_naive(model, _inputs(1), packed.unpack(), torch.arange(3), Objective("entropy", 10))
    assert result.gradient.shape == (3,)
    assert all(layer.mode == "superposition" for layer in model.layers)


def test_oneshot_is_the_argmax_of_minus_the_gradient_over_candidates_only():
    model = _model("lenet", 6, 2)
    packed = PackedMasks.from_model(model)
    obj, x = Objective("superfluous", 10), _inputs(3)
    full = infer_task_oneshot(model, x, packed, obj)
    assert full.rounds == 1
    assert full.task_id == int(torch.argmax(full.evidence))
    assert torch.allclose(full.evidence, -alpha_gradient(model, x, packed, None, obj).gradient)
    others = [t for t in range(6) if t != full.task_id]  # e.g. only the learned tasks
    restricted = infer_task_oneshot(model, x, packed, obj, candidates=others)
    assert restricted.task_id in others
    assert restricted.task_id == others[int(torch.argmax(restricted.evidence))]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_binary_halves_until_one_candidate_is_left(k):
    model = _model("lenet", k, k)
    packed = PackedMasks.from_model(model)
    result = infer_task_binary(model, _inputs(k), packed, Objective("entropy", 10))
    assert result.rounds == math.ceil(math.log2(k))
    assert 0 <= result.task_id < k
    if k > 1:
        # never stale: the answer is the best of the last round, whose candidates it was among
        assert result.task_id == int(result.candidates[torch.argmax(result.evidence)])
        assert result.candidates.numel() == 2  # ceil-halving always ends on a pair


def _reference_halving(evidence_fn, candidates: list[int]) -> tuple[int, float]:
    """Binary inference written out: keep the best ceil(C/2) (ties: lower position) until one is left.

    Returns the answer and the smallest gap, relative to the round's largest |evidence|, between the last
    evidence kept and the first one dropped: how far each cut is from flipping."""
    remaining, margin = list(candidates), math.inf
    while len(remaining) > 1:
        evidence = [float(e) for e in evidence_fn(remaining)]
        ranked = sorted(range(len(remaining)), key=lambda j: (-evidence[j], j))
        keep = math.ceil(len(remaining) / 2)
        margin = min(margin, (evidence[ranked[keep - 1]] - evidence[ranked[keep]]) / max(abs(e) for e in evidence))
        remaining = [remaining[j] for j in sorted(ranked[:keep])]
    return remaining[0], margin


def test_binary_matches_a_reference_halving_with_packed_and_with_naive_gradients():
    model = _model("lenet", 7, 11)
    packed = PackedMasks.from_model(model)
    obj, x = Objective("superfluous", 10), _inputs(5)
    # the same float path: the same decisions, exactly
    answer, _ = _reference_halving(lambda ids: -alpha_gradient(model, x, packed, ids, obj).gradient, list(range(7)))
    assert infer_task_binary(model, x, packed, obj).task_id == answer
    # another float path (naive gradients) only agrees where no cut is within rounding of flipping: check that
    # this example's cuts are clear by far more than packed and naive differ (rtol 1e-4, see above)
    naive_answer, margin = _reference_halving(lambda ids: -alpha_gradient(model, x, packed.unpack(), ids, obj).gradient,
                                              list(range(7)))
    assert margin > 1e-2
    assert naive_answer == answer
    assert infer_task_binary(model, x, packed.unpack(), obj).task_id == answer


def _copies_of_each_mask(model, order: list[int]) -> PackedMasks:
    """The model's task masks at the rows ``order`` names (a task id may come several times)."""
    one = PackedMasks.from_model(model)
    return PackedMasks(packed={n: one.packed(n)[order] for n in one.names}, shapes=one.shapes)


@pytest.mark.parametrize("inference", ["oneshot", "binary"])
@pytest.mark.parametrize("seed", range(4))
def test_identical_masks_tie_bitwise_and_the_lower_position_wins(inference, seed):
    # Every mask twice, shuffled: whichever mask wins, an identical copy ties with it, so the winner must be the
    # earliest position (in candidates) holding that mask, and every pair of copies must get bitwise the same evidence.
    model = _model("lenet", 3, seed)
    order = [2, 0, 1, 0, 2, 1]  # row -> task whose mask it holds
    masks = _copies_of_each_mask(model, order)
    x, obj = _inputs(seed), Objective("entropy" if seed % 2 else "superfluous", 10)
    candidates = [5, 0, 3, 1, 4, 2] if seed >= 2 else None  # positions in candidates, not row numbers
    result = INFERENCE[inference](model, x, masks, obj, candidates)
    rows = list(range(6)) if candidates is None else candidates
    mask_of = {row: order[row] for row in rows}
    assert result.task_id == next(row for row in rows if mask_of[row] == mask_of[result.task_id])
    last = result.candidates.tolist()
    for i, row in enumerate(last):
        for j, other in enumerate(last):
            if mask_of[row] == mask_of[other]:
                assert result.evidence[i].item() == result.evidence[j].item()


def test_nan_evidence_is_an_error():
    model = _model("lenet", 3, 0)
    x = _inputs(0)
    x[0, 0, 0, 0] = float("nan")
    for infer in INFERENCE.values():
        with pytest.raises(ValueError, match="NaN"):
            infer(model, x, PackedMasks.from_model(model), Objective("entropy", 10))


def test_single_candidate_needs_no_pass():
    model = _model("lenet", 3, 0)
    result = infer_task_binary(model, _inputs(0), PackedMasks.from_model(model), Objective("entropy", 10), candidates=[2])
    assert (result.task_id, result.rounds) == (2, 0)


@pytest.mark.parametrize("name", sorted(INFERENCE))
def test_every_registered_procedure_answers_among_the_candidates(name):
    model = _model("lenet", 5, 4)
    packed = PackedMasks.from_model(model)
    candidates = [4, 1, 3]
    result = INFERENCE[name](model, _inputs(2), packed, Objective("entropy", 10), candidates)
    assert result.task_id in candidates
    assert result.rounds == {"oneshot": 1, "binary": 2}[name]


def test_binary_over_two_candidates_is_oneshot():
    # one round keeping the better of two: the same pass and the same decision as one-shot
    model = _model("lenet", 4, 6)
    packed, obj = PackedMasks.from_model(model), Objective("superfluous", 10)
    for pair in ([0, 1], [3, 2], [1, 3]):
        oneshot = INFERENCE["oneshot"](model, _inputs(7), packed, obj, pair)
        binary = INFERENCE["binary"](model, _inputs(7), packed, obj, pair)
        assert binary.task_id == oneshot.task_id
        assert torch.equal(binary.evidence, oneshot.evidence)


@pytest.mark.parametrize("candidates, match", [([], "at least one"), ([0, 3], r"0\.\.2"), ([1, 1], "distinct")])
def test_bad_candidates_are_errors(candidates, match):
    model = _model("lenet", 3, 0)
    with pytest.raises(ValueError, match=match):
        infer_task_oneshot(model, _inputs(0), PackedMasks.from_model(model), Objective("entropy", 10), candidates)


def test_naive_masks_must_cover_every_layer():
    model = _model("lenet", 2, 0)
    floats = PackedMasks.from_model(model).unpack()
    floats.pop("layers.0")
    with pytest.raises(ValueError, match="every masked layer"):
        infer_task_oneshot(model, _inputs(0), floats, Objective("entropy", 10))
