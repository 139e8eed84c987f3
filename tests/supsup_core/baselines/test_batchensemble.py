"""BatchEnsemble: the rank-one layer against its explicit weight, ±1 fast weights, frozen tasks that never change
through a run, and task inference by exhaustive entropy search."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from supsup_core.baselines.batchensemble import (
    BatchEnsemble,
    BatchEnsembleLinear,
    sign_init,
)
from supsup_core.infer.exhaustive import infer_task_exhaustive
from supsup_core.infer.gn_evaluation import (
    GNConfig,
    GNResult,
    evaluate_gn_exhaustive,
    evaluate_run_gn,
)
from supsup_core.nn import modes
from supsup_core.train import continual
from supsup_core.train.runs import RunDirectory
from tests.supsup_core.baselines.helpers import (
    assert_refuses_missing_tasks,
    assert_refuses_state,
    fixed_inputs,
    run_config,
    stream_of,
    tiny_model,
    train,
)


# ------------------------------------------------------------------------------------------------ the layer
def test_the_layer_is_s_times_w_of_r_times_x_and_the_explicit_rank_one_weight(generator):
    layer = BatchEnsembleLinear(6, 4, num_tasks=2, generator=generator)
    x = torch.randn(5, 6, generator=generator)
    outputs = []
    for t in range(2):
        layer.set_task(t)
        w, r, s = layer.weight.detach(), layer.r[t].detach(), layer.s[t].detach()
        by_hand = torch.stack([s * (w @ (r * xi)) for xi in x])  # s ⊙ (W (r ⊙ x)), one sample at a time
        torch.testing.assert_close(layer(x), by_hand)
        torch.testing.assert_close(layer(x), F.linear(x, w * torch.outer(s, r)))  # W ⊙ (s rᵀ)
        outputs.append(layer(x))
    assert not torch.allclose(*outputs)  # one W, tasks differ by their factors


def test_a_task_trains_its_own_factors_never_w(generator):
    layer = BatchEnsembleLinear(3, 2, num_tasks=2, generator=generator)
    assert layer.task_parameters(1) == [layer.r[1], layer.s[1]]
    assert all(p is not layer.weight for t in range(2) for p in layer.task_parameters(t))
    method = BatchEnsemble()
    model = method.build_model(tiny_model(), generator)
    assert method.shared_parameters(model) == [layer.weight for layer in model.layers]
    assert [method.trains_shared(t) for t in range(3)] == [True, False, False]


@settings(derandomize=True, deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300))
def test_sign_init_draws_only_plus_and_minus_one_reproducibly(seed, n):
    signs = sign_init(n, torch.Generator().manual_seed(seed))
    assert signs.dtype == torch.float32 and signs.shape == (n,)
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(signs, sign_init(n, torch.Generator().manual_seed(seed)))
    if n >= 64:  # both signs appear but with probability 2^-63
        assert set(signs.unique().tolist()) == {-1.0, 1.0}


def test_new_tasks_start_at_signs_drawn_from_the_generator():
    layers = [BatchEnsembleLinear(7, 3, num_tasks=2, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    for t in range(2):
        assert torch.equal(layers[0].r[t], layers[1].r[t]) and torch.equal(layers[0].s[t], layers[1].s[t])
        assert set(layers[0].r[t].unique().tolist()) <= {-1.0, 1.0}
    assert not torch.equal(layers[0].r[0], layers[0].r[1])


def test_a_frozen_task_reproduces_the_outputs_exactly_and_trains_nothing(generator):
    trained = BatchEnsembleLinear(6, 4, num_tasks=2, generator=generator)
    with torch.no_grad():
        trained.r[1].mul_(0.37)  # factors that are no longer signs, as after training
    loaded = BatchEnsembleLinear(6, 4)
    loaded.load_state_dict(trained.state_dict(), strict=False)
    x = torch.randn(3, 6, generator=generator)
    for t in range(2):
        assert loaded.add_frozen_task(trained.task_state(t)) == t
        trained.set_task(t), loaded.set_task(t)
        assert torch.equal(loaded(x), trained(x))
        assert not loaded.r[t].requires_grad and not loaded.s[t].requires_grad and loaded.task_parameters(t) == []
    trained.freeze_task(0)
    assert trained.task_parameters(0) == [] and trained.task_parameters(1) == [trained.r[1], trained.s[1]]


@pytest.mark.parametrize("state, match", [
    ({"r": torch.ones(6)}, r"BatchEnsembleLinear task's state holds \['r', 's'\]; got \['r'\]\. The file belongs to another method"),
    ({"r": torch.ones(6), "s": torch.ones(4), "scores": torch.ones(4)}, "The file belongs to another method"),
    ({"r": torch.ones(4), "s": torch.ones(6)}, r"shapes \{'r': \(4,\), 's': \(6,\)\} does not fit this BatchEnsembleLinear .*the file belongs to another run"),
])
def test_a_bad_task_state_names_the_fix(state, match):
    assert_refuses_state(BatchEnsembleLinear(6, 4), state, match)


def test_bad_layers_and_task_ids_name_the_fix():
    with pytest.raises(ValueError, match="in_features"):
        BatchEnsembleLinear(0, 4)
    assert_refuses_missing_tasks(BatchEnsembleLinear(3, 2, num_tasks=1))


# ------------------------------------------------------------------------------------------------ a run
@pytest.fixture(scope="module")
def be_run(tmp_path_factory):
    """A 3-task BatchEnsemble run (12 outputs), with what the trainer's model gave as each results row was computed:
    task 0's outputs on fixed inputs and the shared weights; and shared.safetensors as written after task 0."""
    path, x, seen = tmp_path_factory.mktemp("batchensemble") / "run", fixed_inputs(), {"outputs": [], "weights": []}
    real = continual.evaluate_tasks

    @torch.no_grad()
    def spy(model, stream, task_ids, **kw):
        modes.set_task(model, 0)
        seen["outputs"].append(model(x))
        seen["weights"].append([layer.weight.detach().clone() for layer in model.layers])
        return real(model, stream, task_ids, **kw)

    def on_task_end(task_id, row):
        if task_id == 0:
            seen["shared_after_0"] = (path / "shared.safetensors").read_bytes()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(continual, "evaluate_tasks", spy)
        train(path, run_config("batchensemble", output_size=12), on_task_end=on_task_end)
    return path, seen


def test_training_later_tasks_leaves_task_0s_outputs_bit_for_bit(be_run):
    path, seen = be_run
    first, *later = seen["outputs"]
    assert len(later) == 2 and all(torch.equal(first, outputs) for outputs in later)
    model = RunDirectory.open(path).load_model()  # and as the run's files give it back
    modes.set_task(model, 0)
    with torch.no_grad():
        assert torch.equal(model(fixed_inputs()), first)


def test_the_shared_weight_trains_on_task_0_and_never_after(be_run):
    path, seen = be_run
    run = RunDirectory.open(path)
    after_0 = seen["weights"][0]
    assert all(torch.equal(a, b) for weights in seen["weights"][1:] for a, b in zip(after_0, weights))
    assert (path / "shared.safetensors").read_bytes() == seen["shared_after_0"]
    shared = run.read_shared()
    assert shared.after_task == 0 and set(shared.weights) == {f"layers.{i}.weight" for i in range(3)}
    assert all(torch.equal(shared.weights[f"layers.{i}.weight"], w) for i, w in enumerate(after_0))
    initial = run.load_model(num_tasks=0, initial_weights=True)
    assert not any(torch.equal(layer.weight, w) for layer, w in zip(initial.layers, after_0))  # task 0 trained it


def test_a_task_file_holds_its_factors_only(be_run):
    path, _ = be_run
    task = RunDirectory.open(path).read_task(1)
    assert {name: sorted(state) for name, state in task.modules.items()} == {f"layers.{i}": ["r", "s"] for i in range(3)}
    assert [tuple(task.modules[f"layers.{i}"]["r"].shape) for i in range(3)] == [(64,), (16,), (5,)]


def test_gn_evaluation_of_a_run_infers_tasks_exhaustively(be_run):
    path, _ = be_run
    run = RunDirectory.open(path)
    config = GNConfig.for_stream(stream_of(run.config), scenario="GNu", images_per_inference=32, max_images_per_task=64)
    result = evaluate_run_gn(run, config)
    assert isinstance(result, GNResult) and result.inferences == 3 * 2
    assert 0 <= result.task_inference_accuracy <= 1 and len(result.per_task_inference_accuracy) == 3
    # GNu: a wrongly inferred group scores 0, so no task beats its own factors on the same images
    assert all(a <= own for a, own in zip(result.per_task_accuracy, result.own_mask_per_task_accuracy))


def test_gn_evaluation_of_a_run_refuses_the_superfluous_objective(be_run):
    path, _ = be_run
    run = RunDirectory.open(path)
    config = GNConfig.for_stream(stream_of(run.config), objective="superfluous")
    with pytest.raises(ValueError, match="exhaustive task inference compares output entropies.*Use --objective entropy"):
        evaluate_run_gn(run, config)


# ------------------------------------------------------------------------------------------ exhaustive search
def _tasks(*scales: float, seed: int = 0) -> nn.Module:
    """One BatchEnsemble layer 8 -> 10 whose task ``t`` scales its outputs by ``scales[t]`` (s = scale·1, r = 1):
    a large scale gives near one-hot outputs (entropy near 0), a small one near-uniform outputs (near log 10)."""
    layer = BatchEnsembleLinear(8, 10, generator=torch.Generator().manual_seed(seed))
    for scale in scales:
        layer.add_frozen_task({"r": torch.ones(8), "s": torch.full((10,), float(scale))})
    return nn.Sequential(layer)


def _mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.double(), dim=1)
    return -(p * p.log()).sum(1).mean()


def test_exhaustive_search_picks_the_confident_task_and_reports_every_entropy():
    model, x = _tasks(1e-3, 2e-3, 100.0, 3e-3), torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    found = infer_task_exhaustive(model, x, [0, 1, 2, 3], real_outputs=10)
    assert found.task_id == 2 and found.entropies.shape == (4,)
    for t in range(4):  # the naive reference: the mean entropy of task t's softmax
        modes.set_task(model, t)
        torch.testing.assert_close(found.entropies[t].double(), _mean_entropy(model(x).detach()), rtol=1e-4, atol=1e-5)
    assert found.entropies[2] < 0.1 and (found.entropies[[0, 1, 3]] > 2.2).all()
    reordered = infer_task_exhaustive(model, x, [3, 2, 0], real_outputs=10)
    assert reordered.task_id == 2 and torch.equal(reordered.entropies, found.entropies[[3, 2, 0]])


def test_exhaustive_search_takes_the_lowest_id_on_an_exact_tie_and_refuses_no_candidates():
    model, x = _tasks(1e-3, 50.0, 50.0, 50.0), torch.randn(16, 8, generator=torch.Generator().manual_seed(2))
    found = infer_task_exhaustive(model, x, [0, 1, 2, 3], real_outputs=10)
    assert found.entropies[1] == found.entropies[2] == found.entropies[3] and found.task_id == 1
    assert infer_task_exhaustive(model, x, [2, 3], real_outputs=10).task_id == 2
    with pytest.raises(ValueError, match="no candidate tasks to infer from; train at least one task first"):
        infer_task_exhaustive(model, x, [], real_outputs=10)


def test_exhaustive_gn_evaluation_needs_a_learned_task_per_test_set():
    stream = stream_of(run_config("batchensemble"))
    model = _tasks(1.0)
    with pytest.raises(ValueError, match=r"3 test sets but the model holds 1 learned task\(s\)"):
        evaluate_gn_exhaustive(model, [stream.test_set(t) for t in range(3)], GNConfig(real_outputs=10))
