"""ECE and reliability diagrams against Guo et al.'s reference loop and hand-worked cases."""

import numpy as np
import pytest
from references import guo_reference_ece

from repdrift.metrics import expected_calibration_error, reliability_diagram


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(30)
    probs = softmax(2.5 * rng.standard_normal((500, 10)))
    labels = np.where(rng.random(500) < 0.6, probs.argmax(1), rng.integers(0, 10, 500))
    return probs, labels


@pytest.mark.parametrize("n_bins", [1, 10, 15, 20])
def test_matches_reference_loop(multiclass, n_bins):
    probs, labels = multiclass
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        guo_reference_ece(probs, labels, n_bins), rel=1e-12
    )


def test_hand_worked_bins_closed_on_the_right():
    # n_bins = 2: edges 0, 0.5, 1. Confidences 0.5 (correct) and 0.5 (wrong) fall in (0, 0.5]; 0.9 (correct)
    # and 0.75 (wrong) in (0.5, 1]. ECE = 2/4 |0.5 - 0.5| + 2/4 |0.825 - 0.5| = 0.1625.
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.9], [0.75, 0.25]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.1625, rel=1e-14)
    d = reliability_diagram(probs, labels, n_bins=2)
    np.testing.assert_array_equal(d["count"], [2, 2])
    np.testing.assert_allclose(d["confidence"], [0.5, 0.825])
    np.testing.assert_allclose(d["accuracy"], [0.5, 0.5])
    np.testing.assert_array_equal(d["lower"], [0, 0.5])
    np.testing.assert_array_equal(d["upper"], [0.5, 1])


def test_perfectly_calibrated_and_overconfident():
    # Confidence 0.75, three of four right: ECE 0. All wrong at confidence 1: ECE 1.
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0, abs=1e-15)
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 3), [1, 1, 1]) == 1.0


def test_reliability_diagram_is_consistent_with_ece(multiclass):
    probs, labels = multiclass
    d = reliability_diagram(probs, labels)
    ok = d["count"] > 0
    assert d["count"].sum() == len(labels)
    ece = np.sum(d["count"][ok] / d["count"].sum() * np.abs(d["accuracy"][ok] - d["confidence"][ok]))
    assert ece == pytest.approx(expected_calibration_error(probs, labels), rel=1e-12)
    assert np.isnan(d["confidence"][~ok]).all() and np.isnan(d["accuracy"][~ok]).all()
    assert set(d) == {"lower", "upper", "count", "confidence", "accuracy"}


def test_multilabel_is_one_binary_prediction_per_pair():
    rng = np.random.default_rng(31)
    p = rng.random((200, 6))
    y = (rng.random((200, 6)) < p).astype(int)
    two_class = np.stack([1 - p.ravel(), p.ravel()], axis=1)  # each pair as a 2-class top-label prediction
    expected = guo_reference_ece(two_class, y.ravel())
    assert expected_calibration_error(p, y) == pytest.approx(expected, rel=1e-12)
    assert expected_calibration_error(p[:, 0], y[:, 0]) == pytest.approx(
        guo_reference_ece(two_class[::6], y[:, 0]), rel=1e-12
    )
    # p = 0.5 exactly is predicted negative (the 2-class argmax takes the first of a tie).
    assert reliability_diagram([0.5, 0.5], [0, 1], n_bins=2)["accuracy"][0] == 0.5
    assert expected_calibration_error([0.5], [0]) == 0.5


def test_float32_and_edges_compared_in_float64():
    probs = np.array([[0.2, 0.2, 0.6]], dtype=np.float32)  # float32 0.6 is just above 0.6
    d = reliability_diagram(probs, [2], n_bins=5)
    assert d["count"].tolist() == [0, 0, 0, 1, 0]
    d = reliability_diagram([[0.2, 0.2, 0.6]], [2], n_bins=5)  # float64 0.6 is on the edge: bin (0.4, 0.6]
    assert d["count"].tolist() == [0, 0, 1, 0, 0]


def test_errors(multiclass):
    probs, labels = multiclass
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error(probs * 0.5, labels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.log(probs), labels)
    bad = probs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        expected_calibration_error(bad, labels)
    with pytest.raises(ValueError, match="one per sample"):
        expected_calibration_error(probs, labels[:-1])
    with pytest.raises(ValueError, match="out of range"):
        expected_calibration_error(probs[:, :5], np.full(500, 7))
    with pytest.raises(ValueError, match="0/1"):
        expected_calibration_error(probs, (labels[:, None] == np.arange(10)) * 2)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(probs, labels, n_bins=0)
    with pytest.raises(ValueError, match="at least one"):
        expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int))
