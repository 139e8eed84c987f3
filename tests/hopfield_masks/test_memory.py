"""Memories: dense and implicit agree, fields are differentiable, recall reports what happened, errors are clear."""

import pytest
import torch

from hopfield_masks import (
    RULES,
    DenseMemory,
    ImplicitMemory,
    MaskLayout,
    ModernMemory,
    RecallResult,
    default_backend,
    estimate_nbytes,
    make_memory,
    pack_bits,
)
from tests.hopfield_masks.conftest import MARGIN, async_margins, sync_margins

QUADRATIC = [("hebbian", {}), ("storkey_reference", {}), ("pseudoinverse", {}),
             ("pseudoinverse", {"zero_diagonal": False}), ("covariance", {})]
EVERY = [("hebbian", "dense"), ("hebbian", "implicit"), ("storkey", "dense"), ("storkey_reference", "dense"),
         ("storkey_reference", "implicit"), ("pseudoinverse", "dense"), ("pseudoinverse", "implicit"),
         ("covariance", "dense"), ("covariance", "implicit"), ("modern", "implicit")]


@pytest.mark.parametrize("rule, options", [("hebbian", {}), ("covariance", {"mean_activity": 0.0})])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_exact_ties_keep_their_state_on_every_backend_and_dtype(rule, options, mode):
    # Random probes of a loaded Hebbian memory meet many fields that are exactly 0; float rounding made them
    # ±1e-7 in some backends and dtypes, so 7 to 10 of these 10 recalls used to end in different states.
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 500, generator=g) < 0.5).float() * 2 - 1
    probes = torch.randint(0, 2, (10, 500), generator=g).float() * 2 - 1
    ends = [make_memory(rule, 500, backend, dtype=dtype, **options).store(x).recall(probes, mode=mode, max_steps=300).states.double()
            for backend in ("dense", "implicit") for dtype in (torch.float32, torch.float64)]
    assert all(torch.equal(end, ends[0]) for end in ends[1:])


def test_snapping_works_in_float64_so_half_precision_fields_do_not_overflow():
    from hopfield_masks.functional import snap_field

    field = torch.tensor([3.0, -0.0001, 0.5], dtype=torch.float16)  # d·h = 3e5 overflows float16
    snapped = snap_field(field, 1e-5)
    assert snapped.dtype == torch.float16 and torch.isfinite(snapped).all()
    assert snapped[1] == -0.0001 and snapped[0] == 3.0
    assert torch.equal(snap_field(torch.tensor([1e-9, -2e-9, 0.25]), 0.125), torch.tensor([0.0, 0.0, 0.25]))


def test_field_step_is_the_grid_of_exact_hebbian_fields():
    from hopfield_masks.rules import RULES

    assert RULES["hebbian"]().field_step(1000) == 1e-3
    assert RULES["covariance"](mean_activity=0.0).field_step(8) == 0.125
    assert RULES["covariance"](mean_activity=-0.8).field_step(8) is None  # shifted patterns: no grid
    assert RULES["pseudoinverse"]().field_step(8) is None


@pytest.mark.parametrize("rule, options", QUADRATIC)
def test_implicit_equals_dense(patterns_of, rule, options):
    x = patterns_of(5, 12, 70, 0.3)
    dense = make_memory(rule, 70, "dense", **options).store(x[:5]).store(x[5:])
    implicit = make_memory(rule, 70, "implicit", **options).store(x[:5]).store(x[5:])
    states = torch.randn(6, 70)
    torch.testing.assert_close(implicit.field(states), dense.field(states), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(implicit.energy(states), dense.energy(states), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(implicit.weights(), dense.weights(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(implicit.self_coupling(), dense.weights().diagonal(), atol=1e-5, rtol=0)
    probes = x.clone()
    probes[:, :7] *= -1
    # the rules here without an exact field grid (pseudo-inverse, storkey_reference, covariance) reach the same
    # states only where no decision on the way is within float rounding of its threshold
    for mode, margins in (("sync", sync_margins(dense, probes)), ("async", async_margins(dense, probes, seed=3))):
        clear = margins > MARGIN
        assert int(clear.sum()) >= len(probes) // 2, f"{mode}: too few probes clear of a tie to compare"
        a, b = dense.recall(probes, mode=mode, seed=3), implicit.recall(probes, mode=mode, seed=3)
        assert torch.equal(a.states[clear], b.states[clear]), mode


@pytest.mark.parametrize("rule, backend", EVERY)
def test_energy_and_field_are_differentiable(patterns_of, rule, backend):
    memory = make_memory(rule, 24, backend).store(patterns_of(6, 3, 24))
    scores = torch.randn(2, 24, requires_grad=True)
    states = scores + (torch.sign(scores) - scores).detach()  # straight-through sign
    energy = memory.energy(states)
    assert energy.shape == (2,)
    (grad,) = torch.autograd.grad(energy.sum(), scores)
    torch.testing.assert_close(grad, -memory.field(states.detach()), atol=1e-4, rtol=1e-4)  # h = -dE/ds
    assert memory.energy(states[0]).shape == () and memory.field(states[0]).shape == (24,)


@pytest.mark.parametrize("rule, backend", EVERY)
def test_description_and_sizes(patterns_of, rule, backend):
    x = patterns_of(7, 5, 20)
    memory = make_memory(rule, 20, backend).store(x)
    assert (memory.rule, memory.dim, memory.count, memory.device.type) == (rule, 20, 5, "cpu")
    torch.testing.assert_close(memory.mean_pattern, x.mean(0))
    if backend == "dense":
        assert isinstance(memory, DenseMemory) and memory.packed_patterns is None
        assert memory.nbytes >= 20 * 20 * 4
    else:
        assert torch.equal(memory.packed_patterns, pack_bits((x > 0).to(torch.uint8)))
        assert torch.equal(memory.stored_patterns(), x)
        assert memory.nbytes < 20 * 20 * 4


def test_recall_from_noise_and_result_fields(patterns_of):
    x = patterns_of(8, 4, 100)
    memory = make_memory("storkey", 100).store(x)
    probes = x.clone()
    probes[:, :8] *= -1
    for mode in ("sync", "async"):
        result = memory.recall(probes, mode=mode)
        assert isinstance(result, RecallResult)
        assert torch.equal(result.states, x)
        assert result.converged.all() and not result.cycled.any()
        assert (result.steps >= 1).all()
        torch.testing.assert_close(result.energy, memory.energy(x))
    single = memory.recall(x[0])
    assert single.states.shape == (1, 100) and single.steps.tolist() == [0]


def test_sync_recall_reports_a_two_cycle():
    memory = make_memory("hebbian", 2).store(torch.tensor([1.0, -1.0]))
    result = memory.recall(torch.tensor([1.0, 1.0]))
    assert result.cycled.tolist() == [True] and result.converged.tolist() == [False]


def test_step_limit_warns(patterns_of):
    memory = make_memory("hebbian", 50).store(patterns_of(9, 20, 50))
    with pytest.warns(RuntimeWarning, match="raise max_steps"):
        result = memory.recall(patterns_of(10, 8, 50), max_steps=1)
    assert (~result.converged & ~result.cycled).any()


def test_kwta_recall_keeps_exactly_k_active(patterns_of):
    memory = make_memory("covariance", 60).store(patterns_of(11, 3, 60, 0.2))
    result = memory.recall(patterns_of(12, 5, 60, 0.2), kwta=12)
    assert ((result.states > 0).sum(-1) == 12).all()


def test_modern_readout_retrieves_nearest_pattern(patterns_of):
    x = patterns_of(13, 30, 64)
    memory = make_memory("modern", 64, "implicit", beta=0.5).store(x)
    assert isinstance(memory, ModernMemory) and memory.beta == 0.5
    probes = x[:5].clone()
    probes[:, :6] *= -1
    assert memory.readout(probes).argmax(-1).tolist() == [0, 1, 2, 3, 4]
    assert memory.readout(probes[0]).shape == (30,)
    assert torch.equal(memory.recall(probes).states, x[:5])
    with pytest.raises(ValueError, match="no d×d matrix"):
        memory.weights()


def test_store_masks_with_layout(patterns_of):
    layout = MaskLayout(("a", "b"), ((2, 3), (4,)))
    memory = make_memory("hebbian", 10, "implicit", layout=layout)
    masks = {"a": torch.randint(0, 2, (2, 2, 3)), "b": torch.randint(0, 2, (2, 4))}
    memory.store_masks(masks)
    assert memory.count == 2 and memory.layout is layout
    assert torch.equal(memory.stored_patterns(), layout.flatten(masks).float() * 2 - 1)
    with pytest.raises(ValueError, match="needs a layout"):
        make_memory("hebbian", 10).store_masks(masks)
    with pytest.raises(ValueError, match="layout has 10 units but dim is 11"):
        make_memory("hebbian", 11, layout=layout)


def test_float64_memory(patterns_of):
    memory = make_memory("pseudoinverse", 16, "implicit", dtype=torch.float64).store(patterns_of(14, 3, 16))
    assert memory.field(torch.ones(16)).dtype == torch.float64
    assert isinstance(memory, ImplicitMemory)


def test_errors(patterns_of):
    memory = make_memory("hebbian", 8)
    with pytest.raises(ValueError, match="holds no patterns; call store\\(\\) first"):
        memory.recall(torch.ones(8))
    with pytest.raises(ValueError, match="holds no patterns"):
        memory.mean_pattern
    memory.store(patterns_of(15, 2, 8))
    with pytest.raises(ValueError, match="8 units in the last dimension"):
        memory.store(torch.ones(3, 9))
    with pytest.raises(ValueError, match="found 0.5 at flat index 1"):
        memory.store(torch.tensor([1.0, 0.5, 1, 1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="found NaN"):
        memory.recall(torch.full((8,), float("nan")))
    with pytest.raises(ValueError, match="states must have shape \\(8,\\) or \\(n, 8\\)"):
        memory.field(torch.ones(2, 7))
    with pytest.raises(TypeError, match="floating-point"):
        memory.energy(torch.ones(8, dtype=torch.long))
    with pytest.raises(ValueError, match="mode must be one of 'sync', 'async'"):
        memory.recall(torch.ones(8), mode="parallel")
    with pytest.raises(ValueError, match="kwta works with mode='sync' only"):
        memory.recall(torch.ones(8), mode="async", kwta=2)
    with pytest.raises(ValueError, match="kwta must satisfy k <= dim = 8; got k = 9"):
        memory.recall(torch.ones(8), kwta=9)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        memory.recall(torch.ones(8), max_steps=0)
    with pytest.raises(ValueError, match="rule must be one of"):
        make_memory("oja", 8)
    with pytest.raises(ValueError, match="rule 'storkey' has no implicit backend .*use backend='dense'"):
        make_memory("storkey", 8, "implicit")
    with pytest.raises(ValueError, match="rule 'modern' has no dense backend .*use backend='implicit'"):
        make_memory("modern", 8, "dense")
    with pytest.raises(ValueError, match="rule 'hebbian' takes no option 'beta'; its options are: none"):
        make_memory("hebbian", 8, beta=1.0)
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        make_memory("hebbian", 0)
    with pytest.raises(TypeError, match="floating-point dtype"):
        make_memory("hebbian", 8, dtype=torch.int32)


@pytest.mark.cuda
@pytest.mark.parametrize("rule, backend", EVERY)
def test_cuda_matches_cpu(patterns_of, rule, backend):
    x = patterns_of(16, 6, 40)
    cpu = make_memory(rule, 40, backend).store(x)
    gpu = make_memory(rule, 40, backend, device="cuda").store(x)
    states = torch.randn(3, 40)
    field = gpu.field(states.cuda())
    assert field.device.type == "cuda"
    torch.testing.assert_close(field.cpu(), cpu.field(states), atol=1e-4, rtol=1e-4)
    clear = sync_margins(cpu, x) > MARGIN  # CPU and GPU round differently: compare only clear of ties
    assert torch.equal(gpu.recall(x).states.cpu()[clear], cpu.recall(x).states[clear])


def test_every_rule_works_with_its_default_backend():
    # make_memory("modern", d) used to default to backend="dense", which modern does not have
    for rule in ("hebbian", "storkey", "storkey_reference", "pseudoinverse", "covariance", "modern"):
        memory = make_memory(rule, 16)
        assert memory.backend in RULES[rule].backends


def test_auto_picks_implicit_when_the_dense_matrix_would_be_large():
    assert default_backend("pseudoinverse", 4096) == "dense"
    assert default_backend("pseudoinverse", 50_200) == "implicit"  # `supsup encode` of a 2-task LeNet run
    assert default_backend("hebbian", 4096, max_bytes=32 << 20) == "implicit"  # 67 MB of Ψ over the bound
    assert default_backend("storkey", 50_200) == "dense" and default_backend("modern", 8) == "implicit"
    assert make_memory("pseudoinverse", 50_200).backend == "implicit"


@pytest.mark.parametrize("rule, backend", EVERY)
def test_estimated_bytes_are_the_state_plus_the_largest_temporary(patterns_of, rule, backend):
    from hopfield_masks.packed import packed_scratch_nbytes

    memory = make_memory(rule, 40, backend).store(patterns_of(17, 6, 40))
    estimate = estimate_nbytes(rule, 40, backend, count=6)
    if backend == "dense":
        scratch = 2 * 40 * 40 * 8 if rule == "pseudoinverse" else 0  # its float64 (d, d) work matrices
    else:
        scratch = packed_scratch_nbytes(40, 6)
    assert estimate - scratch == memory.nbytes


def test_a_memory_over_the_bound_is_refused_before_allocating():
    # d = 1.86 M (an fc1024 run): without the bound torch tries to allocate 13.8 TB (RuntimeError, or an OOM kill)
    d = 1_860_000
    need = d * d * (4 + 2 * 8) + d * (4 + 4)  # Ψ, two float64 work matrices; the projection's diagonal, pattern sum
    with pytest.raises(ValueError, match=f"dense 'pseudoinverse' memory of d = 1,860,000 units needs {need:,} bytes "
                                         ".*over the limit of 2,147,483,648 bytes.*backend='implicit'"):
        make_memory("pseudoinverse", 1_860_000, "dense")
    with pytest.raises(ValueError, match="'storkey' has only a dense d×d form; use a rule with an implicit backend"):
        make_memory("storkey", 1_860_000)
    with pytest.raises(ValueError, match="over the limit of 1,000 bytes"):
        make_memory("hebbian", 16, "dense", max_bytes=1000)
    assert make_memory("hebbian", 16, "dense", max_bytes=None).nbytes > 1000


def test_storing_past_the_bound_is_refused_and_keeps_the_memory(patterns_of):
    memory = make_memory("pseudoinverse", 64, "implicit", max_bytes=2000)
    memory.store(patterns_of(18, 2, 64))
    with pytest.raises(ValueError, match="holding 30 patterns needs [0-9,]+ bytes .*over the limit of 2,000 bytes.*fewer"):
        memory.store(patterns_of(19, 28, 64))
    assert memory.count == 2 and memory.is_fixed_point(patterns_of(18, 2, 64)).all()


@pytest.mark.parametrize("rule, options, error, message", [
    ("pseudoinverse", {"zero_diagonal": "yes"}, TypeError, "zero_diagonal must be True or False; got 'yes'"),
    ("modern", {"beta": float("nan")}, ValueError, "beta must be a number in \\(0, inf\\); got nan"),
    ("modern", {"beta": float("inf")}, ValueError, "beta must be a number in \\(0, inf\\); got inf"),
    ("modern", {"beta": -1.0}, ValueError, "beta must be a number in \\(0, inf\\); got -1.0"),
    ("modern", {"beta": 0.0}, ValueError, "beta must be a number"),
    ("covariance", {"mean_activity": float("nan")}, ValueError, "mean_activity must be a number in \\[-1, 1\\]"),
    ("covariance", {"mean_activity": 1.5}, ValueError, "mean_activity must be a number in \\[-1, 1\\]"),
    ("covariance", {"threshold": float("inf")}, ValueError, "threshold must be a number"),
])
def test_rule_options_are_checked(rule, options, error, message):
    with pytest.raises(error, match=message):
        make_memory(rule, 8, **options)


def test_bad_bounds_and_run_digests_are_refused():
    with pytest.raises(ValueError, match="max_bytes must be an integer >= 1"):
        make_memory("hebbian", 8, max_bytes=0)
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'dense', 'implicit'"):
        make_memory("hebbian", 8, "sparse")
    with pytest.raises(ValueError, match="run_digest must be None or a SHA-256 hex digest"):
        make_memory("hebbian", 8, run_digest="abc")
    assert make_memory("hebbian", 8, run_digest="0f" * 32).run_digest == "0f" * 32
