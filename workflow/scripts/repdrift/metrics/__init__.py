"""The study's measurements: CKA, k-NN accuracy, calibration and ranking metrics (numpy only; they import
nothing of repdrift, the measurement and analysis stages import them).

Arrays may be numpy or torch (tensors are detached and copied to the CPU by duck typing; torch is never
imported here, so CPU rules start fast). Bad input (NaN/inf, mismatched sample counts, out-of-range labels)
raises ValueError naming the argument and what was expected. Each module's docstring states its
conventions and their source:

- :mod:`.cka` / :mod:`.layerwise` / :mod:`.minibatch`: linear and RBF CKA (Kornblith et al. 2019), biased
  or debiased; many layers at once; the minibatch estimator of Nguyen et al. (2021).
- :mod:`.knn`: weighted k-NN of the DINO protocol (Caron et al. 2021), and its vote's top-label confidence.
- :mod:`.calibration`: top-label ECE with (lo, hi] bins (Guo et al. 2017) and reliability diagrams.
- :mod:`.ranking`: per-class average precision and ROC AUC as scikit-learn defines them, macro means.
- :mod:`.similarity`: similarity measures beside CKA: orthogonal Procrustes, SVCCA and PWCCA, RSA, mutual k-NN.
"""

from .calibration import binned_ece, expected_calibration_error, reliability_diagram
from .cka import gram_cka, linear_cka, rbf_cka
from .knn import knn_accuracy, knn_classify, knn_top_label
from .layerwise import CenteredLayers, center_layers, layerwise_cka
from .minibatch import MinibatchCKA, minibatch_cka
from .ranking import (
    average_precision_per_class,
    mean_average_precision,
    roc_auc,
    roc_auc_per_class,
)
from .similarity import clip_outliers, mutual_knn, procrustes, pwcca, rsa, svcca

__all__ = [
    "CenteredLayers",
    "MinibatchCKA",
    "average_precision_per_class",
    "binned_ece",
    "center_layers",
    "expected_calibration_error",
    "gram_cka",
    "knn_accuracy",
    "knn_classify",
    "knn_top_label",
    "layerwise_cka",
    "linear_cka",
    "mean_average_precision",
    "minibatch_cka",
    "mutual_knn",
    "clip_outliers",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "reliability_diagram",
    "roc_auc",
    "roc_auc_per_class",
    "rsa",
    "svcca",
]
