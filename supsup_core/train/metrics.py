"""Continual-learning metrics from the accuracy matrix R (R[i][j]: accuracy on task j after training task i)."""
from __future__ import annotations

from typing import Sequence

__all__ = ["check_accuracy_matrix", "average_accuracy", "bwt", "forgetting_max", "forgetting_initial", "fwt", "summarize"]


def check_accuracy_matrix(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    """Validate a lower-triangular accuracy matrix: row ``i`` holds tasks ``0..i`` (extra entries are dropped).

    Returns the matrix as lists of floats, row ``i`` of length ``i + 1``.
    """
    if len(matrix) == 0:
        raise ValueError("the accuracy matrix is empty; train at least one task first")
    rows = []
    for i, row in enumerate(matrix):
        if len(row) < i + 1:
            raise ValueError(f"row {i} of the accuracy matrix must hold tasks 0..{i} ({i + 1} values); got {len(row)}.")
        rows.append([float(v) for v in row[: i + 1]])
    return rows


def average_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean accuracy over all tasks after the last one: ``mean_j R[T-1][j]``."""
    rows = check_accuracy_matrix(matrix)
    return sum(rows[-1]) / len(rows[-1])


def bwt(matrix: Sequence[Sequence[float]]) -> float:
    """Backward transfer ``mean_{j<T-1} (R[T-1][j] − R[j][j])`` (negative = forgetting; 0.0 for one task)."""
    rows = check_accuracy_matrix(matrix)
    last = len(rows) - 1
    if last == 0:
        return 0.0
    return sum(rows[last][j] - rows[j][j] for j in range(last)) / last


def forgetting_max(matrix: Sequence[Sequence[float]]) -> float:
    """Forgetting ``mean_{j<T-1} (max_{j<=i<T-1} R[i][j] − R[T-1][j])`` (Chaudhry et al.; 0.0 for one task)."""
    rows = check_accuracy_matrix(matrix)
    last = len(rows) - 1
    if last == 0:
        return 0.0
    return sum(max(rows[i][j] for i in range(j, last)) - rows[last][j] for j in range(last)) / last


def forgetting_initial(matrix: Sequence[Sequence[float]]) -> float:
    """Forgetting against the accuracy right after learning: ``mean_{j<T-1} (R[j][j] − R[T-1][j])`` = −bwt."""
    return 0.0 - bwt(matrix)  # 0.0 - x keeps 0.0 (not -0.0) when nothing is forgotten


def fwt(full_matrix: Sequence[Sequence[float]], initial: Sequence[float]) -> float:
    """Forward transfer (Lopez-Paz & Ranzato, GEM): ``mean_{1<=i<T} (R[i-1][i] − b_i)`` (0.0 for one task).

    How much training tasks ``0..i-1`` lifts task ``i`` above its accuracy before any training: the gain
    comes from what the method shares between tasks (positive = the earlier tasks help the next one).

    Parameters
    ----------
    full_matrix : sequence of T rows of length K
        Row ``i`` holds the accuracy of *every* task ``0..K-1`` after training task ``i``
        (results.json's ``accuracy_matrix_full``). ``T`` is the number of tasks trained so far, ``T <= K``;
        a partly trained run is measured over its trained tasks, like :func:`bwt`.
    initial : sequence of K floats
        ``b``: the accuracy of every task before any training (results.json's ``initial_accuracy``).

    Returns
    -------
    float
    """
    if len(full_matrix) == 0:
        raise ValueError("the full accuracy matrix is empty; train at least one task first")
    tasks = len(initial)
    if len(full_matrix) > tasks:
        raise ValueError(f"the full accuracy matrix has {len(full_matrix)} rows but initial accuracy holds {tasks} tasks; "
                         "give one initial accuracy per task of the stream (a row per trained task, at most one per task).")
    for i, row in enumerate(full_matrix):
        if len(row) != tasks:
            raise ValueError(f"row {i} of the full accuracy matrix must hold every task 0..{tasks - 1} ({tasks} values, one per "
                             f"initial accuracy); got {len(row)}. A lower-triangular matrix gives no forward transfer.")
    last = len(full_matrix) - 1
    if last == 0:
        return 0.0
    return sum(float(full_matrix[i - 1][i]) - float(initial[i]) for i in range(1, last + 1)) / last


def summarize(matrix: Sequence[Sequence[float]]) -> dict[str, float]:
    """All four metrics by their results.json names."""
    return {
        "average_accuracy": average_accuracy(matrix),
        "bwt": bwt(matrix),
        "forgetting_max": forgetting_max(matrix),
        "forgetting_initial": forgetting_initial(matrix),
    }
