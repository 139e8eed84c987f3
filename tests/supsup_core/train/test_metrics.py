"""Accuracy-matrix metrics against hand-computed examples."""
import pytest

from supsup_core.train.metrics import (
    average_accuracy,
    bwt,
    forgetting_initial,
    forgetting_max,
    summarize,
)

# R[i][j]: task j after training task i
R = [[0.9], [0.7, 0.8], [0.8, 0.6, 0.95]]


def test_hand_computed_example():
    assert average_accuracy(R) == pytest.approx((0.8 + 0.6 + 0.95) / 3)
    assert bwt(R) == pytest.approx(((0.8 - 0.9) + (0.6 - 0.8)) / 2)  # -0.15
    # task 0: max(0.9, 0.7) - 0.8 = 0.1; task 1: max(0.8) - 0.6 = 0.2
    assert forgetting_max(R) == pytest.approx(0.15)
    assert forgetting_initial(R) == pytest.approx(0.15)


def test_max_and_initial_forgetting_differ_when_accuracy_rises_first():
    r = [[0.5], [0.9, 0.8], [0.6, 0.8, 0.7]]
    assert forgetting_initial(r) == pytest.approx(((0.5 - 0.6) + 0.0) / 2)
    assert forgetting_max(r) == pytest.approx(((0.9 - 0.6) + 0.0) / 2)


def test_no_forgetting_and_single_task():
    same = [[0.9], [0.9, 0.8]]
    assert summarize(same) == {"average_accuracy": pytest.approx(0.85), "bwt": 0.0, "forgetting_max": 0.0, "forgetting_initial": 0.0}
    assert bwt([[0.5]]) == 0.0 and forgetting_max([[0.5]]) == 0.0


def test_bad_matrices():
    with pytest.raises(ValueError, match="empty"):
        average_accuracy([])
    with pytest.raises(ValueError, match="row 1"):
        bwt([[0.5], [0.5]])
