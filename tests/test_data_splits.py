from collections import Counter

import numpy as np
import pytest

from repdrift.data.splits import stratified_split
from repdrift.errors import ConfigError


def test_aptos_counts_match_the_paper():
    labels = np.repeat(np.arange(5), [1805, 370, 999, 193, 295])
    counts = Counter(stratified_split(labels, seed=0))
    assert counts == {"train": 2930, "val": 366, "test": 366}


def test_stratified_and_deterministic():
    labels = np.repeat(np.arange(3), [50, 20, 3])
    a = stratified_split(labels, seed=4)
    assert a == stratified_split(labels, seed=4) and a != stratified_split(labels, seed=5)
    per_class = Counter(zip(labels.tolist(), a, strict=True))
    assert per_class[(0, "val")] == 5 and per_class[(1, "test")] == 2
    assert per_class[(2, "train")] == per_class[(2, "val")] == per_class[(2, "test")] == 1  # small class kept in all


def test_tiny_classes_keep_a_training_image():
    split = stratified_split([0, 1, 1], (0.4, 0.3, 0.3), seed=0)
    assert split[0] == "train" and "train" in split[1:]


def test_bad_fractions():
    with pytest.raises(ConfigError, match="summing to 1"):
        stratified_split([0, 1], (0.5, 0.5, 0.5))
