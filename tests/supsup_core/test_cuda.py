"""The same code on a CUDA GPU: layers, streams and a whole run (skipped without a GPU)."""
import pytest
import torch

from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn.layers import MaskedLinear
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig

pytestmark = pytest.mark.cuda


def test_fused_linear_on_cuda_matches_cpu():
    cpu = MaskedLinear(32, 16, num_tasks=1, generator=torch.Generator().manual_seed(0))
    gpu = MaskedLinear(32, 16, num_tasks=0, generator=torch.Generator().manual_seed(0)).cuda()
    gpu.add_task(generator=torch.Generator().manual_seed(0))  # a CPU generator seeds a CUDA layer
    with torch.no_grad():
        gpu.task_scores(0).copy_(cpu.task_scores(0))
    x = torch.randn(8, 32)
    cpu(x).sum().backward()
    gpu(x.cuda()).sum().backward()
    torch.testing.assert_close(gpu.task_scores(0).grad.cpu(), cpu.task_scores(0).grad, rtol=1e-4, atol=1e-5)


def test_stream_tensors_live_on_the_device():
    stream = build_stream(StreamConfig(dataset="permuted-mnist", num_tasks=2), device="cuda", data=load_digits())
    batch = next(stream.train_batches(1, batch_size=16, num_batches=1, generator=torch.Generator()))
    assert batch.x.is_cuda and batch.y.is_cuda and stream.test_set(0).x.is_cuda


def test_run_on_cuda_resumes_on_cpu(tmp_path):
    digits = load_digits()
    config = RunConfig(model=ModelConfig(name="bnnet", input_shape=(1, 8, 8), num_tasks=0, width=32),
                       stream=StreamConfig(dataset="split-mnist", num_tasks=2),
                       train=TrainConfig(iterations=20, optimizer="sgd", lr=0.1), seed=0)
    run = RunDirectory.create(tmp_path / "run", config)
    result = train_run(run, device="cuda", stream=build_stream(config.stream, device="cuda", data=digits))
    assert len(result.accuracy_matrix) == 2 and result.accuracy_matrix[-1][0] == result.accuracy_matrix[0][0]
    model = run.load_model("cpu")
    assert all(not t.is_cuda for t in model.state_dict().values())


def test_rmsprop_on_cuda_is_torchs_and_trains_the_masked_layer():
    from supsup_core.nn import modes
    from supsup_core.nn.models import build_model
    from supsup_core.train.training import make_optimizer, optimizer_implementation

    model = build_model(ModelConfig(name="fc1024", input_shape=(20,), output_size=4, width=32, mask_kind="threshold"),
                        torch.Generator().manual_seed(0)).cuda()
    opt = make_optimizer(model, 0, TrainConfig(iterations=1, optimizer="rmsprop", lr=1e-2))
    assert type(opt) is torch.optim.RMSprop  # the fused kernel is CPU-only
    assert optimizer_implementation(opt) == "torch-rmsprop"  # and the run records so
    modes.set_task(model, 0)
    before = [layer.task_scores(0).detach().clone() for layer in modes.masked_layers(model).values()]
    torch.nn.functional.cross_entropy(model(torch.randn(16, 20, device="cuda")), torch.arange(16, device="cuda") % 4).backward()
    opt.step()
    after = [layer.task_scores(0).detach() for layer in modes.masked_layers(model).values()]
    assert all(not torch.equal(a, b) for a, b in zip(after, before))


@pytest.mark.parametrize("method", ["psp-rotation", "psp-complex", "psp-binary", "batchensemble", "finetune",
                                    "finetune-multihead", "separate"])
def test_every_baseline_trains_on_cuda_and_evaluates_on_cpu(tmp_path, method):
    """Per-task tensors, contexts, shared weights and the kept optimizer live on the run's device; the files
    written there load on the CPU, where the accuracies agree within a margin (other kernels, other rounding)."""
    from supsup_core.train.evaluation import evaluate_gg
    from supsup_core.train.methods import method_train_config

    digits = load_digits()
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=32),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=2),
                       train=method_train_config(method, iterations=30, batch_size=64), seed=0, method=method)
    with RunDirectory.create(tmp_path / "run", config) as run:
        result = train_run(run, device="cuda", stream=build_stream(config.stream, device="cuda", data=digits))
    on_cpu = evaluate_gg(RunDirectory.open(tmp_path / "run"), device="cpu")
    assert all(abs(a - b) <= 0.02 for a, b in zip(on_cpu.per_task_accuracy, result.accuracy_matrix[-1]))
