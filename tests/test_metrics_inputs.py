"""repdrift.metrics stays torch-free yet takes torch tensors (duck-typed), including float16 and GPU-less CPU ones."""

import subprocess
import sys

import numpy as np
import pytest

import repdrift.metrics as m


def test_import_does_not_pull_in_torch_scipy_or_sklearn():
    code = "import sys, repdrift.metrics; print(sorted({'torch', 'scipy', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(50)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 5))
    tx = torch.tensor(x, requires_grad=True)  # .detach() is needed before .numpy()
    assert m.linear_cka(tx, torch.tensor(y)) == pytest.approx(m.linear_cka(x, y), rel=1e-12)
    xs = np.stack([x, x**2])
    np.testing.assert_allclose(
        m.layerwise_cka(torch.tensor(xs), [torch.tensor(y)]), m.layerwise_cka(xs, [y]), rtol=1e-12
    )
    half = m.linear_cka(torch.tensor(x, dtype=torch.float16), torch.tensor(y, dtype=torch.float16))
    assert half == pytest.approx(m.linear_cka(x, y), rel=1e-2)  # float16 is widened to float32
    probs = torch.softmax(torch.tensor(x), 1)
    labels = torch.tensor(rng.integers(0, 6, 40))
    assert m.expected_calibration_error(probs, labels) == pytest.approx(
        m.expected_calibration_error(probs.numpy(), labels.numpy())
    )
    assert m.mean_average_precision(probs, labels) == pytest.approx(
        m.mean_average_precision(probs.numpy(), labels.numpy())
    )
    preds, scores = m.knn_classify(torch.tensor(x), labels, torch.tensor(x[:5]), k=3)
    assert preds.shape == (5,) and scores.shape == (5, 6)


def test_integer_and_bool_features_become_float64():
    x = np.arange(24).reshape(8, 3) ** 2
    assert m.linear_cka(x, x % 5) == pytest.approx(m.linear_cka(x.astype(float), (x % 5).astype(float)), rel=1e-15)
