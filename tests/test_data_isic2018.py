import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import build_dataset
from repdrift.errors import DataError

GT = "ISIC2018_Task3_{0}_GroundTruth/ISIC2018_Task3_{0}_GroundTruth.csv"


@pytest.mark.parametrize("extra", [False, True])
def test_reads_official_layout(tmp_path, extra):
    root = fx.isic(
        tmp_path, {"Training": [1, 1, 0, 2, 3, 4, 5, 6], "Validation": [0, 1], "Test": [6, 5, 1]}, extra_columns=extra
    )
    ds = build_dataset("isic2018", root)
    assert (ds.kind, ds.task) == ("isic2018", "multiclass")
    assert ds.classes == ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    m = ds.manifest
    assert m.columns == ["sample_id", "path", "split", "label"]
    assert m.group_by("split").len().sort("split").rows() == [("test", 3), ("train", 8), ("val", 2)]
    first = m.row(0, named=True)
    assert first["sample_id"] == "ISIC_0024306" and first["label"] == 1
    assert first["path"] == str(tmp_path / "ISIC2018_Task3_Training_Input" / "ISIC_0024306.jpg")
    assert m.filter(pl.col("split") == "test")["label"].to_list() == [6, 5, 1]


def test_missing_folder(tmp_path):
    fx.isic(tmp_path)
    (tmp_path / "ISIC2018_Task3_Validation_Input").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="ISIC2018_Task3_Validation_Input: folder not found; expected"):
        build_dataset("isic2018", tmp_path)


def test_missing_csv(tmp_path):
    fx.isic(tmp_path)
    (tmp_path / GT.format("Test")).unlink()
    with pytest.raises(DataError, match="Test_GroundTruth.csv: file not found; expected a CSV with header image,MEL"):
        build_dataset("isic2018", tmp_path)


def test_missing_column(tmp_path):
    fx.isic(tmp_path)
    csv = tmp_path / GT.format("Training")
    csv.write_text(csv.read_text().replace("VASC", "VASCULAR"))
    with pytest.raises(DataError, match="Training_GroundTruth.csv: missing column\\(s\\) VASC"):
        build_dataset("isic2018", tmp_path)


def test_not_one_hot(tmp_path):
    fx.isic(tmp_path)
    csv = tmp_path / GT.format("Training")
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace("0.0", "1.0", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="Training_GroundTruth.csv: row for 'ISIC_0024307' is not one-hot"):
        build_dataset("isic2018", tmp_path)


def test_non_numeric(tmp_path):
    fx.isic(tmp_path)
    csv = tmp_path / GT.format("Validation")
    csv.write_text(csv.read_text().replace("0.0", "no", 1))
    with pytest.raises(DataError, match="Validation_GroundTruth.csv: non-numeric value"):
        build_dataset("isic2018", tmp_path)


def test_image_listed_but_absent(tmp_path):
    fx.isic(tmp_path)
    (tmp_path / "ISIC2018_Task3_Test_Input" / "ISIC_0024320.jpg").unlink()
    with pytest.raises(DataError, match="Test_GroundTruth.csv: lists 1 image\\(s\\) not found in .*'ISIC_0024320.jpg'"):
        build_dataset("isic2018", tmp_path)


def test_empty_split(tmp_path):
    fx.isic(tmp_path, {"Training": [0, 1], "Validation": [], "Test": [1]})
    with pytest.raises(DataError, match="Validation_GroundTruth.csv: no rows"):
        build_dataset("isic2018", tmp_path)
