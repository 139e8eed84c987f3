"""`supsup capacity`: sweep loads of random patterns and report how well a Hopfield rule stores them."""
from __future__ import annotations

import click

from hopfield_masks import (
    BACKENDS,
    RULES,
    CapacityConfig,
    measure_capacity,
    plot_capacity,
    theory_loads,
)
from hopfield_masks.checks import check_loads
from hopfield_masks.io import write_json
from tools.encode import BACKEND_HELP, max_memory_option
from tools.options import (
    FiniteFloatRange,
    check_output_parent,
    device_option,
    json_option,
    resolve_device,
    seed_option,
    user_errors,
)


def _parse_loads(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        loads = tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers; write e.g. 0.05,0.1,0.138.")
    try:
        return check_loads(loads)
    except ValueError as err:
        raise click.BadParameter(str(err))


def _parse_kwta(ctx: click.Context, param: click.Parameter, value: str) -> str | int | None:
    """'auto' (CapacityConfig resolves it), 'off' -> None, or a positive k."""
    if value == "off":
        return None
    if value == "auto":
        return value
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise click.BadParameter(f"--kwta takes 'auto', 'off' or a positive integer; got {value!r}.")
    return k


@click.command()
@click.option("--rule", type=click.Choice(sorted(RULES)), required=True, help="Learning rule.")
@click.option("--dim", type=click.IntRange(min=2), required=True, help="Units per pattern (d).")
@click.option("--density", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.5, show_default=True,
              help="P(+1) of the patterns, strictly between 0 and 1 (0.5: unbiased).")
@click.option("--correlation", type=FiniteFloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Correlation between patterns, in [0, 1).")
@click.option("--loads", required=True, callback=_parse_loads, help="Comma-separated loads K/d, e.g. 0.05,0.1,0.138.")
@click.option("--noise", type=FiniteFloatRange(0, 1), default=0.1, show_default=True,
              help="Fraction of bits flipped in each probe.")
@click.option("--trials", type=click.IntRange(min=1), default=1, show_default=True, help="Independent repetitions.")
@click.option("--backend", type=click.Choice(["auto", *BACKENDS]), default="auto", show_default=True,
              help=BACKEND_HELP)
@click.option("--mode", type=click.Choice(["sync", "async"]), default="sync", show_default=True, help="Recall dynamics.")
@click.option("--kwta", default="auto", show_default=True, callback=_parse_kwta,
              help="k-winners-take-all recall: 'auto' (round(density*dim) for covariance), 'off', or k.")
@click.option("--max-steps", type=click.IntRange(min=1), default=100, show_default=True, help="Recall step limit.")
@click.option("--beta", type=FiniteFloatRange(0, min_open=True), default=None, help="Modern rule: inverse temperature.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default=None,
              callback=check_output_parent, help="Write a PNG of the curves with the theory lines (its folder must exist).")
@max_memory_option
@seed_option
@device_option
@json_option
def capacity(rule, dim, density, correlation, loads, noise, trials, backend, mode, kwta, max_steps, beta, plot_path,
             max_bytes, seed, device, json_path):
    """Measure fixed points and recall from noisy probes as more random patterns are stored."""
    if beta is not None and rule != "modern":
        raise click.BadParameter("--beta applies to --rule modern only; drop it.", param_hint="--beta")
    try:
        config = CapacityConfig(
            rule=rule, dim=dim, loads=loads, density=density, correlation=correlation, noise=noise, trials=trials,
            seed=seed, backend=backend, mode=mode, kwta=kwta, max_steps=max_steps,
            rule_options={} if beta is None else {"beta": beta}, max_bytes=max_bytes,
        )
    except ValueError as err:
        raise click.UsageError(str(err))
    with user_errors():
        result = measure_capacity(config, device=resolve_device(device), progress=True)
    click.echo(f"rule {rule} ({config.backend}), d = {dim}, density {density:g}, correlation {correlation:g} "
               f"(measured {result.measured_correlation:.3f}), noise {noise:g}, trials {trials}, mode {mode}, "
               f"kwta {config.kwta}")
    click.echo(f"{'load':>8} {'patterns':>8} {'fixed':>8} {'exact':>8} {'overlap':>8} {'stuck':>8}")
    for p in result.points:
        click.echo(f"{p.load:8.4f} {p.patterns:8d} {p.fixed_point_fraction:8.3f} {p.exact_recall_fraction:8.3f} "
                   f"{p.mean_overlap:8.3f} {p.step_limit_fraction:8.3f}")
    theory = ", ".join(f"{name}: {load * dim:.0f}" for name, load in theory_loads(dim).items())
    click.echo(f"theory (patterns at d = {dim}): {theory}")
    if json_path:
        write_json(json_path, result.to_dict())
        click.echo(f"wrote {json_path}")
    if plot_path:
        with user_errors():
            plot_capacity(result, plot_path)
        click.echo(f"wrote {plot_path}")
