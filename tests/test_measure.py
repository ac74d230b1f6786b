"""Per-run measurements on small hand-made feature files: CKA from the trajectory, k-NN accuracy and its ECE."""

import numpy as np
import polars as pl
import pytest

from repdrift.errors import DataError
from repdrift.formats.features import write_features, write_trajectory
from repdrift.measurement.measure import cka_table, knn_table
from repdrift.metrics import linear_cka

LAYERS, DIM, N_TEST = 3, 8, 30


@pytest.fixture(scope="module")
def cka_files(tmp_path_factory):
    """Pre-trained features of a test split (blocks + final) and a trajectory of 3 epochs on 12 of its images."""
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("cka")
    ids = np.array([f"img{i:02d}" for i in range(N_TEST)])
    layers = rng.normal(size=(LAYERS, N_TEST, DIM)).astype(np.float32)
    final = rng.normal(size=(N_TEST, DIM)).astype(np.float32)
    pretrained = tmp / "pretrained.h5"
    write_features(
        pretrained,
        layers={"cls": np.concatenate([layers, final[None]])},
        layers_sample_id=ids,
        attrs={"model": "m", "layers": LAYERS},
    )
    sample = np.arange(0, N_TEST, 3)[::-1]  # 10 images, in another order than the file's
    before = np.concatenate([layers[:, sample], final[None, sample]])
    epochs = [before] + [before + rng.normal(scale=s, size=before.shape).astype(np.float32) for s in (0.5, 1.0, 2.0)]
    trajectory = tmp / "trajectory.h5"
    write_trajectory(trajectory, np.stack(epochs), ids[sample], {"pool": "cls"})
    return pretrained, trajectory, before, epochs


def test_final_cka_is_the_last_trajectory_point_in_both_estimators(cka_files):
    pretrained, trajectory, _, epochs = cka_files
    table = cka_table(str(pretrained), str(trajectory))
    final = table.filter(pl.col("epoch").is_null()).sort("layer")
    last = table.filter(pl.col("epoch") == len(epochs) - 1).sort("layer")
    for column in ("cka", "cka_debiased"):
        np.testing.assert_allclose(final[column].to_numpy(), last[column].to_numpy(), rtol=0, atol=1e-12)
    assert final["layer"].to_list() == [1, 2, 3, 4]  # blocks 1..3, then 4 = the final representation
    assert set(table["samples"]) == {10}


def test_each_epoch_and_layer_against_an_independent_cka(cka_files):
    pretrained, trajectory, before, epochs = cka_files
    table = cka_table(str(pretrained), str(trajectory))
    for epoch, features in enumerate(epochs):
        rows = table.filter(pl.col("epoch") == epoch).sort("layer")
        for layer in range(LAYERS + 1):
            x, y = before[layer].astype(np.float64), features[layer].astype(np.float64)
            assert rows["cka"][layer] == pytest.approx(linear_cka(x, y), rel=1e-5)
            assert rows["cka_debiased"][layer] == pytest.approx(linear_cka(x, y, debiased=True), rel=1e-4, abs=1e-6)
    epoch0 = table.filter(pl.col("epoch") == 0)
    np.testing.assert_allclose(epoch0["cka"].to_numpy(), 1.0, atol=1e-6)  # the pre-trained model itself
    # The estimators differ off the diagonal: the debiased one removes the biased one's small-n floor.
    later = table.filter(pl.col("epoch") == 3)
    assert (later["cka_debiased"] < later["cka"]).all()


def test_the_other_measures_on_the_same_aligned_features(cka_files):
    from repdrift.metrics import mutual_knn, procrustes, pwcca, rbf_cka, rsa

    pretrained, trajectory, before, epochs = cka_files
    measures = ["procrustes", "pwcca", "rsa", "mutual_knn", "rbf_cka"]
    table = cka_table(str(pretrained), str(trajectory), measures, k=3)
    assert {"procrustes", "pwcca", "rsa", "mutual_knn@3", "rbf_cka"} <= set(table.columns)
    rows = table.filter(pl.col("epoch") == 2).sort("layer")

    def clipped(layers):  # one threshold over the model's layers: the mean of each sample's 0.95 quantile of |values|
        t = np.quantile(np.abs(np.concatenate(list(layers), axis=1)), 0.95, axis=1).mean()
        return np.clip(layers, -t, t)

    for layer in range(LAYERS + 1):
        x, y = before[layer], epochs[2][layer]
        assert rows["mutual_knn@3"][layer] == pytest.approx(
            mutual_knn(clipped(before)[layer], clipped(epochs[2])[layer], k=3, clip=1.0)
        )
        assert rows["procrustes"][layer] == pytest.approx(procrustes(x, y), rel=1e-6)
        assert rows["rsa"][layer] == pytest.approx(rsa(x, y), rel=1e-6)
        assert rows["rbf_cka"][layer] == pytest.approx(rbf_cka(x, y, threshold=0.8), rel=1e-6)  # the default
        assert rows["pwcca"][layer] == pytest.approx(pwcca(x, y), rel=1e-6)
    epoch0 = table.filter(pl.col("epoch") == 0)
    for column in ("procrustes", "rsa", "mutual_knn@3"):
        np.testing.assert_allclose(epoch0[column].to_numpy(), 1.0, atol=1e-6)


def test_a_trajectory_with_other_layers_is_refused(cka_files, tmp_path):
    pretrained, _, before, _ = cka_files
    short = tmp_path / "short.h5"
    write_trajectory(
        short, before[None, :2], np.array([f"img{i:02d}" for i in range(0, N_TEST, 3)][::-1]), {"pool": "cls"}
    )
    with pytest.raises(DataError, match="layers"):
        cka_table(str(pretrained), str(short))


def vote_ece_by_hand(bank, bank_labels, queries, query_labels, k, temperature, n_bins):
    """DINO's vote written out query by query, and the ECE of its top label with (lo, hi] bins, by the formula."""
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    confidence, correct = [], []
    for query, label in zip(queries, query_labels):
        sims = bank @ query
        nearest = np.argsort(-sims)[:k]
        votes = np.zeros(bank_labels.max() + 1)
        for j in nearest:
            votes[bank_labels[j]] += np.exp(sims[j] / temperature)
        votes /= votes.sum()
        confidence.append(votes.max())
        correct.append(float(votes.argmax() == label))
    confidence, correct = np.array(confidence), np.array(correct)
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return correct.mean(), ece


def test_knn_accuracy_and_ece_against_a_hand_written_vote(tmp_path):
    rng = np.random.default_rng(1)
    classes, dim = 4, 6
    centres = rng.normal(size=(classes, dim)) * 1.5
    bank_labels, query_labels = np.repeat(np.arange(classes), 20), np.repeat(np.arange(classes), 10)
    bank = centres[bank_labels] + rng.normal(size=(bank_labels.size, dim))
    queries = centres[query_labels] + rng.normal(size=(query_labels.size, dim))
    labels = np.concatenate([bank_labels, query_labels])
    split = np.array(["train"] * bank.shape[0] + ["test"] * queries.shape[0])
    ids = np.array([f"s{i}" for i in range(labels.size)])
    everything = np.concatenate([bank, queries]).astype(np.float32)
    path = tmp_path / "natural.h5"
    write_features(path, {"cls": everything}, ids, split, labels, attrs={"model": "m"})
    table = knn_table(str(path), "cls", ks=[5, 20], temperature=0.07, n_bins=15)
    assert table.columns == ["k", "accuracy", "ece", "pool"]
    for row in table.iter_rows(named=True):
        accuracy, ece = vote_ece_by_hand(
            everything[:80].astype(np.float64),
            bank_labels,
            everything[80:].astype(np.float64),
            query_labels,
            row["k"],
            0.07,
            15,
        )
        assert row["accuracy"] == pytest.approx(accuracy)
        assert row["ece"] == pytest.approx(ece, abs=1e-6)  # float32 cosines in the workflow, float64 here
        assert 0 < row["ece"] < 1
