"""Per-class AP / ROC AUC against sklearn (ties included) and hand-worked cases."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from repdrift.metrics import average_precision_per_class, mean_average_precision, roc_auc, roc_auc_per_class


@pytest.fixture
def multilabel():
    rng = np.random.default_rng(40)
    targets = (rng.random((300, 8)) < 0.3).astype(int)
    scores = targets * 0.7 + rng.random((300, 8))
    scores[:, :4] = np.round(scores[:, :4], 1)  # many tied scores in half of the classes
    return scores, targets


def test_matches_sklearn_per_class_with_ties(multilabel):
    scores, targets = multilabel
    ap = average_precision_per_class(scores, targets)
    auc = roc_auc_per_class(scores, targets)
    for c in range(targets.shape[1]):
        assert ap[c] == pytest.approx(average_precision_score(targets[:, c], scores[:, c]), rel=1e-12)
        assert auc[c] == pytest.approx(roc_auc_score(targets[:, c], scores[:, c]), rel=1e-12)
    assert mean_average_precision(scores, targets) == pytest.approx(
        average_precision_score(targets, scores, average="macro"), rel=1e-12
    )
    assert roc_auc(scores, targets) == pytest.approx(roc_auc_score(targets, scores, average="macro"), rel=1e-12)


def test_multiclass_one_vs_rest_matches_sklearn():
    rng = np.random.default_rng(41)
    labels = rng.integers(0, 4, 200)
    scores = np.round(np.eye(4)[labels] * 0.5 + rng.random((200, 4)), 2)
    scores /= scores.sum(1, keepdims=True)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores, multi_class="ovr"), rel=1e-12)
    onehot = np.eye(4, dtype=int)[labels]
    assert mean_average_precision(scores, labels) == pytest.approx(average_precision_score(onehot, scores), rel=1e-12)


def test_binary_one_dimensional_input():
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 50)
    s = rng.random(50).astype(np.float32)
    assert mean_average_precision(s, y) == pytest.approx(average_precision_score(y, s), rel=1e-12)
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), rel=1e-12)


def test_hand_worked():
    # Ranked 1 0 1 0: precision 1/1 at the first positive, 2/3 at the second. AUC: 3 of 4 pairs ordered.
    assert mean_average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert roc_auc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)
    # A tie of one positive and one negative at the top is one threshold: precision 1/2 there, then 2/3.
    assert mean_average_precision([0.9, 0.9, 0.1], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # AUC counts the tied pair as half: pairs (0.9+, 0.9-) = 1/2, (0.1+, 0.9-) = 0.
    assert roc_auc([0.9, 0.9, 0.1], [1, 0, 1]) == pytest.approx(0.25)
    assert mean_average_precision([0.3, 0.3, 0.3], [1, 0, 0]) == pytest.approx(1 / 3)


def test_class_without_positives_is_excluded(multilabel):
    scores, targets = multilabel
    targets = targets.copy()
    targets[:, 2] = 0
    targets[:, 5] = 1  # no negatives: AP is defined (1.0), AUC is not
    ap, auc = average_precision_per_class(scores, targets), roc_auc_per_class(scores, targets)
    assert np.isnan(ap[2]) and ap[5] == 1.0
    assert np.isnan(auc[2]) and np.isnan(auc[5])
    assert mean_average_precision(scores, targets) == pytest.approx(np.mean(np.delete(ap, 2)))
    assert roc_auc(scores, targets) == pytest.approx(np.mean(np.delete(auc, [2, 5])))
    assert np.isnan(mean_average_precision(scores, np.zeros_like(targets)))
    assert np.isnan(roc_auc(scores, np.ones_like(targets)))
    assert 0 <= mean_average_precision(scores, targets) <= 1


def test_errors(multilabel):
    scores, targets = multilabel
    with pytest.raises(ValueError, match="0/1"):
        mean_average_precision(scores, targets * 2)
    with pytest.raises(ValueError, match="expected shape"):
        mean_average_precision(scores, targets[:-1])
    with pytest.raises(ValueError, match="out of range"):
        roc_auc(scores, np.full(300, 8))
    bad = scores.copy()
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="scores: expected finite"):
        roc_auc(bad, targets)
