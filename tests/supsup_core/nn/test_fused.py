"""The fused RMSprop: same updates as torch's, the masked weight it writes, its fallbacks and its build."""
from __future__ import annotations

import pytest
import torch

from supsup_core.nn import fused, modes
from supsup_core.nn.fused import FusedRMSprop, MaskSink, torch_rmsprop
from supsup_core.nn.layers import MaskedLinear
from supsup_core.nn.supermask import MaskConfig
from supsup_core.train.training import TrainConfig, make_optimizer


@pytest.fixture(scope="module")
def built_kernel():
    """Skip unless the fused kernel builds here (built on first use, not while pytest collects this file)."""
    if not fused.kernels_available():
        pytest.skip("no C compiler here, so the fused kernel cannot be built")


needs_kernel = pytest.mark.usefixtures("built_kernel")


def _pair(shape, generator, **kwargs):
    """Equal parameters under torch's RMSprop and the fused one, and the list the fused one's sink fills."""
    torch_p = torch.nn.Parameter(torch.randn(shape, generator=generator))
    fused_p = torch.nn.Parameter(torch_p.detach().clone())
    weight = torch.randn(shape, generator=generator).sign()
    written: list[torch.Tensor] = []
    sink = {fused_p: MaskSink(weight, written.append)}
    return torch_p, torch.optim.RMSprop([torch_p], **kwargs), fused_p, FusedRMSprop([fused_p], masks=sink, **kwargs), weight, written


@needs_kernel
@pytest.mark.parametrize("weight_decay, momentum", [(0.0, 0.0), (1e-3, 0.0), (0.0, 0.9), (1e-2, 0.5)])
@pytest.mark.parametrize("shape", [(37, 23), (1000,), (64, 64)])  # sizes that leave a vector tail, and one that does not
def test_fused_updates_agree_with_torch_rmsprop(shape, weight_decay, momentum, generator):
    torch_p, torch_opt, fused_p, fused_opt, weight, written = _pair(shape, generator, lr=1e-2, alpha=0.9, weight_decay=weight_decay, momentum=momentum)
    for _ in range(25):
        grad = torch.randn(shape, generator=generator)
        torch_p.grad, fused_p.grad = grad.clone(), grad.clone()
        torch_opt.step()
        fused_opt.step()
    # one ulp per step at most: torch's vectorised sqrt is not correctly rounded, the kernel's is
    torch.testing.assert_close(fused_p.detach(), torch_p.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_opt.state[fused_p]["square_avg"], torch_opt.state[torch_p]["square_avg"], rtol=1e-5, atol=1e-9)
    assert len(written) == 25
    assert torch.equal(written[-1], weight * (fused_p.detach() >= 0))


@needs_kernel
def test_the_written_mask_keeps_weights_whose_scores_are_zero_of_either_sign():
    scores = torch.nn.Parameter(torch.tensor([-1.0, -0.0, 0.0, 2.0, float("nan")]))
    weight = torch.tensor([3.0, -3.0, 3.0, -3.0, 3.0])
    written: list[torch.Tensor] = []
    opt = FusedRMSprop([scores], lr=0.0, masks={scores: MaskSink(weight, written.append)})  # lr 0: scores unchanged
    scores.grad = torch.ones(5)
    opt.step()
    assert torch.equal(written[0], torch.tensor([0.0, -3.0, 3.0, -3.0, 0.0]))  # as torch.ge(scores, 0) decides


@needs_kernel
def test_a_step_bumps_the_version_counter_so_saved_graphs_notice(generator):
    scores = torch.nn.Parameter(torch.randn(8, generator=generator))
    opt = FusedRMSprop([scores], lr=0.1)
    loss = (scores * scores).sum()  # saves scores for its backward
    scores.grad = torch.ones(8)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_tensors_the_kernel_cannot_take_get_torchs_update_and_no_mask(generator):
    base = torch.randn(12, 10, generator=generator, dtype=torch.float64)
    torch_p, fused_p = torch.nn.Parameter(base.clone()), torch.nn.Parameter(base.clone())
    written: list[torch.Tensor] = []
    torch_opt = torch.optim.RMSprop([torch_p], lr=1e-2, momentum=0.5)
    fused_opt = FusedRMSprop([fused_p], lr=1e-2, momentum=0.5, masks={fused_p: MaskSink(base.sign(), written.append)})
    for _ in range(5):
        grad = torch.randn(12, 10, generator=generator, dtype=torch.float64)
        torch_p.grad, fused_p.grad = grad.clone(), grad.clone()
        torch_opt.step()
        fused_opt.step()
    assert torch.equal(fused_p, torch_p)  # float64: torch's own single-tensor RMSprop ran, bit for bit
    assert written == []


def test_without_the_kernel_everything_is_torchs_update(monkeypatch, generator):
    monkeypatch.setattr(fused, "_kernel", lambda: None)
    torch_p, torch_opt, fused_p, fused_opt, _, written = _pair((20, 30), generator, lr=1e-2, weight_decay=1e-3)
    for _ in range(5):
        grad = torch.randn(20, 30, generator=generator)
        torch_p.grad, fused_p.grad = grad.clone(), grad.clone()
        torch_opt.step()
        fused_opt.step()
    assert torch.equal(fused_p, torch_p)
    assert written == []


def test_parameters_without_a_gradient_are_left_alone(generator):
    scores = torch.nn.Parameter(torch.randn(5, generator=generator))
    before = scores.detach().clone()
    FusedRMSprop([scores], lr=0.1).step()
    assert torch.equal(scores, before)


def test_step_evaluates_the_closure_with_gradients_on(generator):
    scores = torch.nn.Parameter(torch.randn(5, generator=generator))
    opt = FusedRMSprop([scores], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (scores ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) > 0
    assert scores.grad is not None


def test_bad_arguments_name_the_problem(generator):
    scores = torch.nn.Parameter(torch.randn(5, generator=generator))
    with pytest.raises(ValueError, match="lr must be >= 0; got -1"):
        FusedRMSprop([scores], lr=-1.0)
    with pytest.raises(ValueError, match="momentum must be >= 0"):
        FusedRMSprop([scores], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="lr must be a finite number; got inf"):
        FusedRMSprop([scores], lr=float("inf"))
    with pytest.raises(ValueError, match="weight_decay must be a finite number; got nan"):
        FusedRMSprop([scores], lr=0.1, weight_decay=float("nan"))
    stranger = torch.zeros(5)
    with pytest.raises(ValueError, match="masks names a tensor that is not among params"):
        FusedRMSprop([scores], lr=0.1, masks={stranger: MaskSink(stranger, print)})


# ------------------------------------------------------------------------- masked layers and training
def _after_a_fused_step(generator):
    """A threshold MaskedLinear, its fused optimizer after one step (so a masked weight is written), and an input."""
    layer = MaskedLinear(30, 20, num_tasks=1, mask_config=MaskConfig(kind="threshold"), generator=generator)
    scores = layer.task_scores(0)
    opt = FusedRMSprop([scores], lr=0.05, masks={scores: layer.mask_sink(0)})
    x = torch.randn(16, 30, generator=generator)
    layer(x).square().sum().backward()
    opt.step()
    return layer, scores, opt, x


def _eager_output(layer, scores, x):
    return torch.nn.functional.linear(x, layer.weight * (scores.detach() >= 0))


@needs_kernel
def test_masked_linear_uses_the_written_weight_until_its_scores_change(generator):
    layer, scores, _, x = _after_a_fused_step(generator)
    assert torch.equal(layer._fresh.masked, layer.weight * (scores.detach() >= 0))
    torch.testing.assert_close(layer(x), _eager_output(layer, scores, x), rtol=0, atol=0)
    with torch.no_grad():
        scores.neg_()  # an in-place edit: the written weight is stale now
    torch.testing.assert_close(layer(x), _eager_output(layer, scores, x), rtol=0, atol=0)
    layer.clear_fresh_masked_weight()
    assert layer._fresh is None


@needs_kernel
def test_a_swapped_storage_or_weight_makes_the_written_weight_stale(generator):
    layer, scores, opt, x = _after_a_fused_step(generator)
    torch.nn.utils.vector_to_parameters(-torch.nn.utils.parameters_to_vector([scores]), [scores])  # swaps .data
    torch.testing.assert_close(layer(x), _eager_output(layer, scores, x), rtol=0, atol=0)
    layer(x).square().sum().backward()
    layer.weight = -layer.weight  # a new weight buffer after the sink was made: its writes are not kept
    opt.step()
    assert layer._fresh is None


def test_momentum_turned_on_after_the_first_step_is_used(generator):
    scores = torch.nn.Parameter(torch.randn(50, generator=generator))
    opt = FusedRMSprop([scores], lr=0.1)
    scores.grad = torch.ones(50)
    opt.step()
    opt.param_groups[0]["momentum"] = 0.9
    before, square_avg = scores.detach().clone(), opt.state[scores]["square_avg"].clone()
    opt.step()
    expected, buf = before.clone(), torch.zeros(50)
    torch_rmsprop([expected], [torch.ones(50)], [square_avg], [], [buf], [torch.zeros(())], lr=0.1, alpha=0.99, eps=1e-8,
                  weight_decay=0.0, momentum=0.9, centered=False)
    torch.testing.assert_close(scores.detach(), expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(opt.state[scores]["momentum_buffer"], buf)


def test_only_threshold_masks_of_trainable_tasks_take_a_sink(generator):
    threshold = MaskedLinear(4, 3, num_tasks=2, mask_config=MaskConfig(kind="threshold"), generator=generator)
    topk = MaskedLinear(4, 3, num_tasks=1, mask_config=MaskConfig(kind="topk", density=0.5), generator=generator)
    threshold.freeze_task(1)
    assert threshold.mask_sink(0) is not None
    assert threshold.mask_sink(1) is None
    assert topk.mask_sink(0) is None
    with pytest.raises(ValueError, match="task_id 5 is out of range"):
        threshold.mask_sink(5)


def _train_steps(model, x, y, steps, lr=1e-2):
    opt = make_optimizer(model, 0, TrainConfig(iterations=steps, optimizer="rmsprop", lr=lr))
    modes.set_task(model, 0)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return opt, [layer.task_scores(0).detach().clone() for layer in modes.masked_layers(model).values()]


@needs_kernel
def test_training_with_the_fused_step_follows_torchs_rmsprop(monkeypatch):
    from supsup_core.nn.models import ModelConfig, build_model

    config = ModelConfig(name="fc1024", input_shape=(20,), output_size=4, width=32, mask_kind="threshold")
    x, y = torch.randn(64, 20, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 4
    margin, steps = 0.2, 30

    def model_clear_of_the_threshold():
        # Every score starts `margin` away from 0 and moves less than that in `steps` steps (checked below), so
        # both runs take the same mask at every step exactly, and their scores can be compared to rounding.
        model = build_model(config, torch.Generator().manual_seed(0))
        with torch.no_grad():
            for layer in modes.masked_layers(model).values():
                s = layer.task_scores(0)
                s.copy_(torch.where(s >= 0, s + margin, s - margin))
        return model

    start = [layer.task_scores(0).detach().clone() for layer in modes.masked_layers(model_clear_of_the_threshold()).values()]
    fused_opt, fused_scores = _train_steps(model_clear_of_the_threshold(), x, y, steps, lr=1e-3)
    monkeypatch.setattr(fused, "kernels_available", lambda: False)
    torch_opt, torch_scores = _train_steps(model_clear_of_the_threshold(), x, y, steps, lr=1e-3)
    assert isinstance(fused_opt, FusedRMSprop) and isinstance(torch_opt, torch.optim.RMSprop)
    for before, got, want in zip(start, fused_scores, torch_scores):
        assert (got - before).abs().max() < margin / 2 and (want - before).abs().max() < margin / 2  # no mask changed
        assert (got - before).abs().max() > 1e-3  # but the scores did train
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- building the kernel
@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """A clean slate for _kernel(): its own cache folder, and the memoised result forgotten before and after."""
    monkeypatch.setenv("SUPSUP_CACHE_DIR", str(tmp_path / "cache"))
    fused._kernel.cache_clear()
    yield tmp_path / "cache"
    fused._kernel.cache_clear()


@needs_kernel
def test_the_library_is_built_once_into_the_cache_folder(fresh_build):
    assert fused.kernels_available()
    (built,) = fresh_build.glob("fused_rmsprop-*.so")
    stamp = built.stat().st_mtime_ns
    fused._kernel.cache_clear()
    assert fused.kernels_available()
    assert built.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert sorted(p.name for p in fresh_build.iterdir()) == [built.name, built.name + ".sha256"]  # no temporary left behind
    assert (fresh_build / (built.name + ".sha256")).read_text().strip() == fused._sha256(built)


@needs_kernel
def test_an_unwritable_cache_folder_builds_for_this_process_only(fresh_build, monkeypatch):
    real_compile = fused._compile

    def compile_but_not_into_the_cache(compiler, flags, target):
        if fresh_build in target.parents:
            raise PermissionError(13, "Permission denied", str(target))  # what a read-only home gives
        real_compile(compiler, flags, target)

    monkeypatch.setattr(fused, "_compile", compile_but_not_into_the_cache)
    assert fused.kernels_available()
    assert list(fresh_build.glob("*.so")) == []


@needs_kernel
def test_without_a_home_folder_the_library_is_built_for_this_process(fresh_build, monkeypatch):
    monkeypatch.delenv("SUPSUP_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(fused.Path, "home", no_home)
    assert fused.kernels_available()


@needs_kernel
def test_cc_may_carry_arguments(fresh_build, monkeypatch):
    monkeypatch.setenv("CC", f"{fused.shutil.which('cc') or fused.shutil.which('gcc')} -g")
    assert fused.kernels_available()
    assert len(list(fresh_build.glob("fused_rmsprop-*.so"))) == 1


def test_switching_the_kernel_off_builds_nothing_and_says_nothing(fresh_build, monkeypatch, recwarn):
    monkeypatch.setenv("SUPSUP_FUSED", "0")
    assert not fused.kernels_available()
    assert not fresh_build.exists()
    assert len(recwarn) == 0


def test_a_missing_compiler_falls_back_with_a_warning(fresh_build, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(fused.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="no C compiler found.*SUPSUP_FUSED=0"):
        assert not fused.kernels_available()


def test_a_failing_build_falls_back_with_a_warning_naming_the_errors(fresh_build, monkeypatch, tmp_path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cc: out of luck' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(UserWarning, match="did not build.*out of luck"):
        assert not fused.kernels_available()
    assert list(fresh_build.glob("*.so")) == []


# ------------------------------------------------------------------------- what the cache may load
_PLANTED = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(getenv("SUPSUP_TEST_MARKER"), "w");
    if (f) { fputs("loaded", f); fclose(f); }
}
void supsup_rmsprop_step(void) {}
"""


def _cached_names():
    """The cache file name of the library for each flag set, for this compiler and source."""
    compiler, source = fused._compiler(), fused._SOURCE.read_bytes()
    return [fused._library_name(compiler, flags, source) for flags in fused._FLAG_SETS]


def _plant(folder, tmp_path, *, digest: bool, body: str = _PLANTED):
    """Put a library whose constructor writes a marker file at every path the kernel's cache would load."""
    source = tmp_path / "planted.c"
    source.write_text(body)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in _cached_names():
        fused.subprocess.run([*fused._compiler(), "-shared", "-fPIC", str(source), "-o", str(folder / name)], check=True)
        if digest:  # a digest that matches the planted bytes: only the symbol check can tell
            (folder / (name + ".sha256")).write_text(fused._sha256(folder / name))
    return [folder / name for name in _cached_names()]


@pytest.fixture
def marker(monkeypatch, tmp_path):
    path = tmp_path / "constructor-ran"
    monkeypatch.setenv("SUPSUP_TEST_MARKER", str(path))
    return path


@needs_kernel
def test_a_library_planted_in_the_cache_is_rebuilt_not_loaded(fresh_build, tmp_path, marker):
    planted = _plant(fresh_build, tmp_path, digest=False)
    assert fused.kernels_available()
    assert not marker.exists()  # its constructor never ran
    assert any(fused._verified(path) for path in planted)  # replaced by a build of ours, digest recorded


@needs_kernel
@pytest.mark.parametrize("damage", ["empty", "altered", "digest missing"])
def test_an_empty_or_altered_cached_library_is_rebuilt(fresh_build, damage):
    assert fused.kernels_available()
    (built,) = fresh_build.glob("*.so")
    # damaged as another process would: a new file (this process still maps the old one)
    replacement = built.with_name("replacement")
    if damage == "empty":
        replacement.write_bytes(b"")
        replacement.replace(built)
    elif damage == "altered":
        replacement.write_bytes(built.read_bytes() + b"\0")
        replacement.replace(built)
    else:
        fused._digest_path(built).unlink()
    assert not fused._verified(built)
    fused._kernel.cache_clear()
    assert fused.kernels_available()
    assert fused._verified(built) and built.stat().st_size > 0


@needs_kernel
def test_a_cache_folder_others_may_write_is_never_loaded_from(fresh_build, tmp_path, marker):
    planted = _plant(fresh_build, tmp_path, digest=True)
    fresh_build.chmod(0o777)
    with pytest.warns(UserWarning, match="not yours alone to write.*SUPSUP_CACHE_DIR"):
        assert fused.kernels_available()
    assert not marker.exists()
    assert all(fused._sha256(path) == fused._digest_path(path).read_text() for path in planted)  # left as they were


@needs_kernel
def test_a_cached_library_without_the_kernel_symbol_is_rebuilt_for_this_process(fresh_build, tmp_path, recwarn):
    planted = _plant(fresh_build, tmp_path, digest=True, body="int not_the_kernel(void) { return 0; }\n")
    assert fused.kernels_available()  # no traceback, no warning: a private build took its place
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert not fused._verified(planted[0])  # its digest is gone, so the next run rebuilds it (the OpenMP build, tried first)


def test_a_compiler_that_builds_no_kernel_symbol_falls_back_with_one_warning(fresh_build, monkeypatch, tmp_path):
    real = fused._compiler()
    if real is None:
        pytest.skip("no C compiler here")
    empty = tmp_path / "empty.c"
    empty.write_text("int not_the_kernel(void) { return 0; }\n")
    wrapper = tmp_path / "cc"  # compiles something else whatever it is asked to build
    wrapper.write_text(f'#!/bin/sh\nfor a; do case "$a" in *.c) set -- "$@" ;; esac; done\n'
                       f'out=""; prev=""; for a; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
                       f'exec {" ".join(real)} -shared -fPIC {empty} -o "$out"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    with pytest.warns(UserWarning, match="did not build.*does not export supsup_rmsprop_step") as caught:
        assert not fused.kernels_available()
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1


# ------------------------------------------------------------------------- one OpenMP runtime
def _watch_loads(monkeypatch, foreign_runtime: bool):
    """Record the flags of each library loaded; with ``foreign_runtime``, an OpenMP build maps a runtime torch lacks."""
    loaded: list[tuple[str, ...]] = []
    real_load = fused._load

    def load(compiler, flags, source):
        lib = real_load(compiler, flags, source)
        loaded.append(flags)
        return lib

    def runtimes():
        seen = {"/site-packages/torch/lib/libgomp.so.1"}
        if foreign_runtime and any("-fopenmp" in flags for flags in loaded):
            seen.add("/opt/intel/lib/libiomp5.so")
        return frozenset(seen)

    monkeypatch.setattr(fused, "_load", load)
    monkeypatch.setattr(fused, "_openmp_runtimes", runtimes)
    return loaded


@needs_kernel
def test_an_openmp_build_with_a_runtime_other_than_torchs_runs_single_threaded(fresh_build, monkeypatch):
    loaded = _watch_loads(monkeypatch, foreign_runtime=True)
    with pytest.warns(UserWarning, match="libiomp5.so, not the OpenMP runtime torch uses.*single-threaded") as caught:
        assert fused.kernels_available()
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1
    assert "-fopenmp" not in loaded[-1]


@needs_kernel
def test_an_openmp_build_sharing_torchs_runtime_is_kept(fresh_build, monkeypatch, recwarn):
    loaded = _watch_loads(monkeypatch, foreign_runtime=False)
    assert fused.kernels_available()
    assert len(loaded) == 1 and loaded[0] == fused._FLAG_SETS[0]
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_the_openmp_runtimes_are_read_from_the_process_maps(monkeypatch, tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /venv/torch/lib/libgomp.so.1\n"
        "7f01-7f02 r-xp 00000000 08:01 2 /usr/lib/libiomp5.so\n"
        "7f02-7f03 r-xp 00000000 08:01 3 /usr/lib/libgompish-helper.txt\n"
        "7f03-7f04 rw-p 00000000 00:00 0 \n"
        "7f04-7f05 r-xp 00000000 08:01 4 /usr/lib/libm.so.6\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(maps if path == "/proc/self/maps" else path, *a, **k))
    assert fused._openmp_runtimes() == {"/venv/torch/lib/libgomp.so.1", "/usr/lib/libiomp5.so"}
