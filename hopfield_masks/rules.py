"""Hopfield learning rules, each incremental: a dense d×d update and, where one exists, a K×K implicit form.

Every quadratic rule defines a symmetric Ψ with field ``h = Ψ s - θ`` and energy ``E = -½ sᵀΨs + θ Σ s``.
The implicit form is ``Ψ = Yᵀ A Y - diag(D)`` with Y = X - m the (K, d) stored patterns centred by the
rule's scalar ``centre`` m, A a K×K ``coupling`` built from the Gram matrix G = X Xᵀ, and D a d-vector:

- ``"zero"``: D = diag(Yᵀ A Y), so Ψ has a zero diagonal;
- ``"constant"``: D = ``constant_diagonal(K, d)`` for every unit;
- ``"none"``: D = 0.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from hopfield_masks.checks import check_choice, check_fraction, check_rule_options

__all__ = [
    "RULES",
    "Covariance",
    "Hebbian",
    "LearningRule",
    "Modern",
    "PseudoInverse",
    "Storkey",
    "StorkeyReference",
    "make_rule",
]


@dataclass(frozen=True)
class LearningRule:
    """Base of the learning rules: options as dataclass fields, math as methods."""

    name: ClassVar[str] = ""
    backends: ClassVar[tuple[str, ...]] = ("dense", "implicit")  # the forms the rule has; see hopfield_masks.backends
    missing_backends: ClassVar[Mapping[str, str]] = MappingProxyType({})  # backend -> why the rule has no such form
    coupling_is_diagonal: ClassVar[bool] = False  # A = I/d: the old block never changes

    @property
    def diagonal(self) -> str:
        """How the implicit form subtracts its diagonal: "zero", "constant" or "none"."""
        return "zero"

    def options(self) -> dict[str, Any]:
        """The rule's options, JSON-ready."""
        return dataclasses.asdict(self)

    def prepare(self, patterns: Tensor) -> "LearningRule":
        """Fix data-dependent options from the first stored batch (default: nothing to fix)."""
        return self

    @property
    def centre(self) -> float:
        """Scalar m subtracted from ±1 patterns before the outer products."""
        return 0.0

    def resolved_threshold(self) -> float:
        """θ in ``h = Ψ s - θ``."""
        return 0.0

    def field_step(self, dim: int) -> float | None:
        """Spacing of the grid the exact ``Ψ s`` of ±1 states lies on, or None where there is none.

        Recall rounds fields to it, so that a field that is exactly 0 in exact arithmetic is 0, not ±1e-7,
        and ties keep their state whatever the backend, dtype or order of summation. That needs the
        rounding error of d·h below one half: in one scratch measurement (not kept) it held in float32 up
        to d = 4.2 M, and at d = 6 M the implicit backend's error reached 1.07 on large fields (not at
        ties); float64 has room to spare.
        """
        return None

    def extra_names(self) -> tuple[str, ...]:
        """Names of the (d,) vectors the dense backend keeps beside its weights."""
        return ()

    def dense_scratch_nbytes(self, dim: int) -> int:
        """Bytes of the temporaries :meth:`dense_store` allocates beside the (d, d) weights (default: none of size d²)."""
        return 0

    def constant_diagonal(self, count: int, dim: int) -> float:
        """D for ``diagonal == "constant"``."""
        raise NotImplementedError

    def dense_store(self, weights: Tensor, extras: dict[str, Tensor], patterns: Tensor) -> None:
        """Add ``patterns`` (k, d) to the (d, d) ``weights`` in place (``extras``: rule-specific vectors)."""
        raise NotImplementedError

    def implicit_coupling(self, coupling: Tensor, gram: Tensor, count: int, dim: int) -> Tensor:
        """K×K coupling A after storing; ``coupling`` is the old (count, count) A, ``gram`` the new (K, K) G."""
        raise NotImplementedError


@dataclass(frozen=True)
class Hebbian(LearningRule):
    """Hebbian outer-product rule: Ψ = (1/d) Σ_μ x_μ x_μᵀ with a zero diagonal."""

    name: ClassVar[str] = "hebbian"
    coupling_is_diagonal: ClassVar[bool] = True

    def dense_store(self, weights: Tensor, extras: dict[str, Tensor], patterns: Tensor) -> None:
        centred = patterns - self.centre
        weights.addmm_(centred.T, centred, alpha=1.0 / weights.shape[0])
        weights.fill_diagonal_(0.0)

    def implicit_coupling(self, coupling: Tensor, gram: Tensor, count: int, dim: int) -> Tensor:
        return torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) / dim

    def field_step(self, dim: int) -> float | None:
        # d·Ψ holds integers when the patterns are not shifted, so d·Ψs does too for ±1 states
        return 1.0 / dim if self.centre == 0.0 else None


@dataclass(frozen=True)
class Covariance(Hebbian):
    """Covariance rule for biased patterns: Ψ = (1/d) Σ_μ (x_μ - m)(x_μ - m)ᵀ, zero diagonal.

    Parameters
    ----------
    mean_activity : float or None
        m, the mean of the ±1 patterns (2p - 1 for P(+1) = p). None: taken from the first stored batch
        and then kept fixed, so later stores stay incremental.
    threshold : float or None
        θ. None: the midpoint ``-m (1 - m²)`` between the expected fields of +1 and -1 units of a stored
        pattern. Ignored by k-winners-take-all recall.
    """

    name: ClassVar[str] = "covariance"
    mean_activity: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.mean_activity is not None:
            check_fraction(self.mean_activity, "mean_activity", low=-1.0, high=1.0,
                           hint="It is the mean of the ±1 patterns, 2p - 1 for P(+1) = p; or None to measure it.")
        if self.threshold is not None:
            check_fraction(self.threshold, "threshold", low=-math.inf, high=math.inf, open_low=True, open_high=True,
                           hint="Give a finite θ, or None for the midpoint -m (1 - m²).")

    def prepare(self, patterns: Tensor) -> "Covariance":
        if self.mean_activity is not None:
            return self
        return dataclasses.replace(self, mean_activity=float(patterns.double().mean()))

    @property
    def centre(self) -> float:
        return 0.0 if self.mean_activity is None else self.mean_activity

    def resolved_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        m = self.centre
        return -m * (1.0 - m * m)


@dataclass(frozen=True)
class Storkey(LearningRule):
    """Storkey's rule, exact: w_ij += (1/d)(x_i x_j - x_i h_ji - h_ij x_j), h_ij = Σ_{k≠i,j} w_ik x_k.

    With a zero diagonal this is ``W <- (1 + 2/d) W + (1/d)(x xᵀ - x hᵀ - h xᵀ)``, h = W x, then the
    diagonal is zeroed. Dense only: the zeroed diagonal has no exact K×K form.
    """

    name: ClassVar[str] = "storkey"
    backends: ClassVar[tuple[str, ...]] = ("dense",)
    missing_backends: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"implicit": "its zeroed diagonal couples triple products of patterns, so it has no exact K×K form"})

    def dense_store(self, weights: Tensor, extras: dict[str, Tensor], patterns: Tensor) -> None:
        d = weights.shape[0]
        for x in patterns:
            h = weights @ x
            weights.mul_(1.0 + 2.0 / d)
            weights.addr_(x, x, alpha=1.0 / d)
            weights.addr_(x, h, alpha=-1.0 / d)
            weights.addr_(h, x, alpha=-1.0 / d)
            weights.fill_diagonal_(0.0)


@dataclass(frozen=True)
class StorkeyReference(LearningRule):
    """The SupSup reference code's Storkey variant: h = Ψx, Ψ += (1/d)(x xᵀ - I - x hᵀ - h xᵀ).

    Its diagonal is not zeroed (it drifts, possibly negative). Implicitly Ψ = Xᵀ A X - (K/d) I exactly:
    storing x after K' patterns with overlaps v = X'x and u = A'v appends ``-u/d`` as A's new row and
    column and ``(1 + 2K'/d)/d`` as its new diagonal entry.
    """

    name: ClassVar[str] = "storkey_reference"

    @property
    def diagonal(self) -> str:
        return "constant"

    def constant_diagonal(self, count: int, dim: int) -> float:
        return count / dim

    def dense_store(self, weights: Tensor, extras: dict[str, Tensor], patterns: Tensor) -> None:
        d = weights.shape[0]
        for x in patterns:
            h = weights @ x
            weights.addr_(x, x, alpha=1.0 / d)
            weights.diagonal().sub_(1.0 / d)
            weights.addr_(x, h, alpha=-1.0 / d)
            weights.addr_(h, x, alpha=-1.0 / d)

    def implicit_coupling(self, coupling: Tensor, gram: Tensor, count: int, dim: int) -> Tensor:
        total = gram.shape[0]
        out = torch.zeros(total, total, dtype=gram.dtype, device=gram.device)
        out[:count, :count] = coupling
        for k in range(count, total):
            u = out[:k, :k] @ gram[:k, k]
            out[:k, k] = -u / dim
            out[k, :k] = -u / dim
            out[k, k] = (1.0 + 2.0 * k / dim) / dim
        return out


@dataclass(frozen=True)
class PseudoInverse(LearningRule):
    """Pseudo-inverse (projection) rule: Ψ = X⁺X = Xᵀ G⁺ X, the projection onto the stored patterns' span.

    Any linearly independent set is stored exactly (every pattern is a fixed point). A pattern already
    in the span adds nothing. Incremental dense update: residuals R = X_new (I - P), P += Rᵀ (R Rᵀ)⁺ R.

    Parameters
    ----------
    zero_diagonal : bool
        Zero Ψ's diagonal (self-couplings enlarge spurious basins); the projection's diagonal is kept
        aside so later stores stay exact.
    """

    name: ClassVar[str] = "pseudoinverse"
    zero_diagonal: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.zero_diagonal, bool):
            raise TypeError(f"zero_diagonal must be True or False; got {self.zero_diagonal!r}. Pass a bool, not a string.")

    def dense_scratch_nbytes(self, dim: int) -> int:
        # dense_store works on a float64 copy of the projection and adds a float64 (d, d) product to it
        return 2 * dim * dim * 8

    @property
    def diagonal(self) -> str:
        return "zero" if self.zero_diagonal else "none"

    def extra_names(self) -> tuple[str, ...]:
        return ("projection_diagonal",) if self.zero_diagonal else ()

    def dense_store(self, weights: Tensor, extras: dict[str, Tensor], patterns: Tensor) -> None:
        d = weights.shape[0]
        projection = weights.double()
        if self.zero_diagonal:
            projection.diagonal().add_(extras["projection_diagonal"].double())
        x = patterns.double()
        residuals = x - x @ projection
        projection += residuals.T @ _pinv_psd(residuals @ residuals.T, tol=1e-6 * d) @ residuals
        if self.zero_diagonal:
            extras["projection_diagonal"].copy_(projection.diagonal())
            projection.fill_diagonal_(0.0)
        weights.copy_(projection)

    def implicit_coupling(self, coupling: Tensor, gram: Tensor, count: int, dim: int) -> Tensor:
        return _pinv_psd(gram, tol=1e-8 * dim)


@dataclass(frozen=True)
class Modern(LearningRule):
    """Modern (softmax) Hopfield retrieval over the stored patterns X (implicit only).

    Energy ``E = -(1/β) log Σ_μ exp(β x_μ·s)``, field ``h = Xᵀ softmax(β X s)``.

    Parameters
    ----------
    beta : float
        Inverse temperature on raw overlaps x_μ·s (which range over [-d, d]).
    """

    name: ClassVar[str] = "modern"
    backends: ClassVar[tuple[str, ...]] = ("implicit",)
    missing_backends: ClassVar[Mapping[str, str]] = MappingProxyType({"dense": "softmax retrieval has no d×d matrix"})
    beta: float = 1.0

    def __post_init__(self) -> None:
        check_fraction(self.beta, "beta", low=0.0, high=math.inf, open_low=True, open_high=True,
                       hint="β is an inverse temperature: give a finite positive number, e.g. 1.0.")

    @property
    def diagonal(self) -> str:
        return "none"


def _pinv_psd(matrix: Tensor, tol: float) -> Tensor:
    """Pseudo-inverse of a symmetric positive semi-definite matrix, dropping eigenvalues <= tol."""
    if matrix.numel() == 0:
        return matrix.clone()
    values, vectors = torch.linalg.eigh(matrix)
    keep = values > tol
    kept = vectors[:, keep]
    return (kept / values[keep]) @ kept.T


RULES: dict[str, type[LearningRule]] = {
    rule.name: rule for rule in (Hebbian, Storkey, StorkeyReference, PseudoInverse, Covariance, Modern)
}


def make_rule(rule: str, **options: Any) -> LearningRule:
    """The learning rule called ``rule`` with ``options``, each checked (its name, then its value).

    Parameters
    ----------
    rule : str
        A key of ``RULES``.
    **options
        The rule's dataclass fields, e.g. ``beta=0.5`` for "modern".

    Returns
    -------
    LearningRule
    """
    check_choice(rule, "rule", RULES)
    rule_class = RULES[rule]
    check_rule_options(options, rule, [f.name for f in dataclasses.fields(rule_class)])
    return rule_class(**options)
