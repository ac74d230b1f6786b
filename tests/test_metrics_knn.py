"""k-NN (DINO protocol) against sklearn's neighbour search and a brute-force transcription of the protocol."""

import numpy as np
import pytest
from references import dino_reference
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from repdrift.metrics import knn_accuracy, knn_classify
from repdrift.metrics.knn import top_k


@pytest.fixture
def data():
    rng = np.random.default_rng(20)
    centres = rng.standard_normal((5, 16))
    labels = rng.integers(0, 5, 400)
    bank = centres[labels] + 0.8 * rng.standard_normal((400, 16))
    test_labels = rng.integers(0, 5, 90)
    queries = centres[test_labels] + 0.8 * rng.standard_normal((90, 16))
    return bank, labels, queries, test_labels


@pytest.mark.parametrize("k", [1, 7, 20, 400])
def test_matches_dino_reference(data, k):
    bank, labels, queries, _ = data
    preds, scores = knn_classify(bank, labels, queries, k=k, temperature=0.07)
    ref = dino_reference(bank, labels, queries, k, 0.07, 5)
    np.testing.assert_allclose(scores, ref / ref.sum(1, keepdims=True), rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(preds, ref.argmax(1))
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-12)


def test_neighbours_match_sklearn_cosine_search(data):
    bank, labels, queries, _ = data
    nn = NearestNeighbors(n_neighbors=15, metric="cosine", algorithm="brute").fit(bank)
    dist, idx = nn.kneighbors(queries)

    def norm(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    vals, ours = top_k(norm(queries) @ norm(bank).T, 15)
    np.testing.assert_array_equal(ours, idx)
    np.testing.assert_allclose(vals, 1 - dist, atol=1e-12)


def test_predictions_match_sklearn_classifier_with_dino_weights(data):
    bank, labels, queries, _ = data

    def norm(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    # For unit vectors, cosine s = 1 - d^2 / 2, so the DINO weight exp(s / T) is a function of the distance.
    clf = KNeighborsClassifier(20, weights=lambda d: np.exp((1 - d**2 / 2) / 0.07), algorithm="brute").fit(
        norm(bank), labels
    )
    preds, scores = knn_classify(bank, labels, queries, k=20)
    np.testing.assert_array_equal(preds, clf.predict(norm(queries)))
    np.testing.assert_allclose(scores, clf.predict_proba(norm(queries)), rtol=1e-9)


def test_hand_worked_case():
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # cosines with (1, 0): 1, 0, 1/sqrt(2)
    preds, scores = knn_classify(bank, [0, 1, 1], [[3.0, 0.0]], k=2, temperature=0.5)
    w0, w1 = np.exp(1 / 0.5), np.exp(np.sqrt(0.5) / 0.5)  # neighbours: bank 0 (class 0) and bank 2 (class 1)
    np.testing.assert_allclose(scores, [[w0 / (w0 + w1), w1 / (w0 + w1)]], rtol=1e-14)
    assert preds.tolist() == [0]


@pytest.mark.parametrize("shape,k", [((3, 50_000), 200), ((5, 1000), 20), ((4, 37), 5), ((2, 10), 10), ((6, 999), 1)])
def test_top_k_exact_including_ties(shape, k):
    rng = np.random.default_rng(21)
    for sims in (rng.standard_normal(shape), np.round(rng.standard_normal(shape), 1), np.zeros(shape)):
        vals, idx = top_k(sims.astype(np.float32), k)
        np.testing.assert_array_equal(vals, -np.sort(-sims.astype(np.float32), axis=1)[:, :k])
        np.testing.assert_array_equal(np.take_along_axis(sims.astype(np.float32), idx, 1), vals)
        assert all(len(set(row)) == k for row in idx.tolist())


def test_knn_accuracy_takes_each_k_from_one_search(data):
    bank, labels, queries, test_labels = data
    acc = knn_accuracy(bank, labels, queries, test_labels, ks=(20, 1, 100))
    assert list(acc) == [1, 20, 100]
    for k, a in acc.items():
        assert a == np.mean(knn_classify(bank, labels, queries, k=k)[0] == test_labels)
    assert 0.5 < acc[20] <= 1.0


def test_chunking_does_not_change_results(data):
    bank, labels, queries, _ = data
    full = knn_classify(bank, labels, queries, k=10)
    chunked = knn_classify(bank, labels, queries, k=10, max_block_bytes=7 * 400 * 8)  # 7 queries per chunk
    np.testing.assert_array_equal(full[0], chunked[0])
    np.testing.assert_array_equal(full[1], chunked[1])


def test_float32_and_torch_like_inputs(data):
    bank, labels, queries, _ = data

    class FakeTensor:  # duck-typed like torch.Tensor: .detach().cpu().numpy()
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    p64, s64 = knn_classify(bank, labels, queries)
    p32, s32 = knn_classify(FakeTensor(bank.astype(np.float32)), FakeTensor(labels), queries.astype(np.float32))
    np.testing.assert_array_equal(p32, p64)
    np.testing.assert_allclose(s32, s64, atol=1e-4)


def test_zero_vector_and_num_classes():
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    preds, scores = knn_classify(bank, [2, 0], [[0.0, 0.0]], k=2, num_classes=4)
    # A zero query has similarity 0 to both: equal weights, the tie goes to the smaller class index.
    np.testing.assert_allclose(scores, [[0.5, 0, 0.5, 0]])
    assert preds.tolist() == [0]


def test_errors(data):
    bank, labels, queries, test_labels = data
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, bank size = 400\]"):
        knn_classify(bank, labels, queries, k=401)
    with pytest.raises(ValueError, match="bank size"):
        knn_accuracy(bank, labels, queries, test_labels, ks=(10, 1000))
    with pytest.raises(ValueError, match="k: expected"):
        knn_classify(bank, labels, queries, k=0)
    with pytest.raises(ValueError, match="one per sample"):
        knn_classify(bank, labels[:-1], queries)
    with pytest.raises(ValueError, match="same width"):
        knn_classify(bank, labels, queries[:, :-1])
    with pytest.raises(ValueError, match="out of range"):
        knn_classify(bank, labels, queries, num_classes=3)
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(bank, labels, queries, temperature=0)
    with pytest.raises(ValueError, match="non-negative"):
        knn_classify(bank, -labels - 1, queries)
    bad = queries.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="test_features: expected finite"):
        knn_classify(bank, labels, bad)
    with pytest.raises(ValueError, match="test_labels"):
        knn_accuracy(bank, labels, queries, test_labels[:-1])
