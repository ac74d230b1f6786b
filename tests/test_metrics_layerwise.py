"""layerwise_cka (batched, reusable self-terms) and minibatch_cka (Nguyen et al. 2021)."""

import numpy as np
import pytest
from references import minibatch_ref

from repdrift.metrics import MinibatchCKA, center_layers, layerwise_cka, linear_cka, minibatch_cka


@pytest.fixture
def layers():
    rng = np.random.default_rng(10)
    base = rng.standard_normal((80, 16))
    xs = np.stack([np.tanh(base @ rng.standard_normal((16, 16))) for _ in range(4)])
    ys = np.stack([xs[i] + 0.3 * i * rng.standard_normal((80, 16)) for i in range(4)])
    return xs, ys[:3]  # 4 pre-trained layers against 3 fine-tuned ones


@pytest.mark.parametrize("debiased", [False, True])
def test_pairwise_matrix_equals_pair_by_pair(layers, debiased):
    xs, ys = layers
    out = layerwise_cka(xs, ys, debiased=debiased)
    expected = [[linear_cka(x, y, debiased) for y in ys] for x in xs]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert out.shape == (4, 3)


def test_diagonal_and_layer_count_check(layers):
    xs, ys = layers
    diag = layerwise_cka(xs[:3], ys, pairwise=False)
    np.testing.assert_allclose(diag, np.diag(layerwise_cka(xs[:3], ys)), rtol=1e-12)
    with pytest.raises(ValueError, match="as many layers"):
        layerwise_cka(xs, ys, pairwise=False)


def test_reused_reference_and_list_input_with_different_widths(layers):
    xs, ys = layers
    ref = center_layers(xs)
    for debiased in (False, True):
        np.testing.assert_array_equal(
            layerwise_cka(ref, ys, debiased=debiased), layerwise_cka(xs, ys, debiased=debiased)
        )
    mixed = [xs[0][:, :5], xs[1], xs[2][:, :9]]  # layers of different widths
    np.testing.assert_allclose(layerwise_cka(mixed, ys)[:, 0], [linear_cka(m, ys[0]) for m in mixed], rtol=1e-12)


def test_float32_layers_close_to_float64(layers):
    xs, ys = layers
    np.testing.assert_allclose(
        layerwise_cka(xs.astype(np.float32), ys.astype(np.float32)), layerwise_cka(xs, ys), rtol=1e-6
    )


def test_layer_errors(layers):
    xs, ys = layers
    with pytest.raises(ValueError, match="same samples"):
        layerwise_cka(xs, ys[:, :-1])
    with pytest.raises(ValueError, match=r"\(L, n, d\)"):
        layerwise_cka(xs[0], ys)
    with pytest.raises(ValueError, match="same number of samples"):
        layerwise_cka([xs[0], xs[1][:-1]], ys)
    bad = xs.copy()
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        layerwise_cka(bad, ys)
    const = xs.copy()
    const[1] = 2.0
    out = layerwise_cka(const, ys)
    assert np.isnan(out[1]).all() and np.isfinite(np.delete(out, 1, axis=0)).all()


# --- minibatch CKA --------------------------------------------------------------------------------------
def test_minibatch_matches_gram_reference(layers):
    xs, ys = layers
    xb, yb = np.split(xs[0], 4), np.split(ys[1], 4)
    assert minibatch_cka(zip(xb, yb)) == pytest.approx(minibatch_ref(xb, yb), rel=1e-10)


def test_single_batch_is_debiased_cka(layers):
    xs, ys = layers
    assert minibatch_cka([(xs[0], ys[0])]) == pytest.approx(linear_cka(xs[0], ys[0], debiased=True), rel=1e-12)


def test_minibatch_over_layers(layers):
    xs, ys = layers
    batches = [(xs[:, i : i + 20], ys[:, i : i + 20]) for i in range(0, 80, 20)]
    out = minibatch_cka(batches)
    expected = [[minibatch_ref(np.split(x, 4), np.split(y, 4)) for y in ys] for x in xs]
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    diag = minibatch_cka([(x[:3], y) for x, y in batches], pairwise=False)
    np.testing.assert_allclose(diag, np.diag(out[:3]), rtol=1e-12)


def test_minibatch_errors(layers):
    xs, ys = layers
    acc = MinibatchCKA()
    with pytest.raises(ValueError, match="no batch"):
        acc.result()
    acc.update(xs[0][:20], ys[0][:20])
    with pytest.raises(ValueError, match="equal-size batches"):
        acc.update(xs[0][20:30], ys[0][20:30])
    with pytest.raises(ValueError, match="n >= 4"):
        MinibatchCKA().update(xs[0][:3], ys[0][:3])
    with pytest.raises(ValueError, match="same samples"):
        MinibatchCKA().update(xs[0][:20], ys[0][:21])
    with pytest.raises(ValueError, match="both be one layer"):
        MinibatchCKA().update(xs[:, :20], ys[0][:20])
