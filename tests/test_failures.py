"""A failure record is read back only under the definition it was written with."""

from repdrift.study.failures import FILE_NAME, clear_failure, record_failure, recorded_failure

DEFINITION = dict(backbone=dict(name="vit", img_size=32, mean=[0.5, 0.5, 0.5]), recipe=dict(lr=6.0e-4, epochs=6))


def test_a_record_matches_its_own_definition_only(tmp_path):
    assert recorded_failure(tmp_path, DEFINITION) is None
    record_failure(tmp_path, "diverged at epoch 1", DEFINITION)
    assert recorded_failure(tmp_path, DEFINITION) == "diverged at epoch 1"
    # Key order does not matter; any changed value does.
    reordered = dict(recipe=dict(epochs=6, lr=6.0e-4), backbone=DEFINITION["backbone"])
    assert recorded_failure(tmp_path, reordered) == "diverged at epoch 1"
    assert recorded_failure(tmp_path, dict(DEFINITION, recipe=dict(lr=3.0e-4, epochs=6))) is None
    clear_failure(tmp_path)
    assert not (tmp_path / FILE_NAME).exists() and recorded_failure(tmp_path, DEFINITION) is None


def test_an_unreadable_record_is_ignored(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    assert recorded_failure(tmp_path, DEFINITION) is None
    (tmp_path / FILE_NAME).write_text('{"message": "x"}')
    assert recorded_failure(tmp_path, DEFINITION) is None
