"""Accuracy-matrix metrics against hand-computed examples."""
import pytest

from supsup_core.train.metrics import (
    average_accuracy,
    bwt,
    forgetting_initial,
    forgetting_max,
    fwt,
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


# full matrix: row i holds every task after training task i; B: every task before any training
FULL = [[0.9, 0.3, 0.2], [0.7, 0.8, 0.4], [0.8, 0.6, 0.95]]
B = [0.1, 0.25, 0.1]


def test_forward_transfer_hand_computed():
    # task 1 after task 0: 0.3 - 0.25; task 2 after task 1: 0.4 - 0.1
    assert fwt(FULL, B) == pytest.approx(((0.3 - 0.25) + (0.4 - 0.1)) / 2)
    assert fwt(FULL[:2], B) == pytest.approx(0.3 - 0.25)  # a partly trained run: over its trained tasks
    assert fwt(FULL[:1], B) == 0.0 and fwt([[0.5]], [0.1]) == 0.0


@pytest.mark.parametrize("matrix, initial, match", [
    ([], B, "empty"),
    ([[0.9, 0.3, 0.2], [0.7, 0.8]], B, r"row 1 .*\(3 values.*got 2"),  # ragged
    (R, [0.1, 0.1, 0.1], "row 0 .*lower-triangular"),  # the lower-triangular matrix, not the full one
    (FULL, [0.1, 0.1], "3 rows but initial accuracy holds 2"),
])
def test_forward_transfer_refuses_bad_shapes(matrix, initial, match):
    with pytest.raises(ValueError, match=match):
        fwt(matrix, initial)
