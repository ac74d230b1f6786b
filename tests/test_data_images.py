import numpy as np
import pytest
from PIL import Image

from repdrift.data.images import load_image
from repdrift.errors import DataError


def write(path, mode="RGB", fmt=None):
    arr = np.random.default_rng(0).integers(0, 256, (48, 48, 3) if mode == "RGB" else (48, 48), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.mark.parametrize("name, mode", [("a.png", "RGB"), ("b.jpg", "RGB"), ("xray.png", "L"), ("c.JPEG", "RGB")])
def test_loads_rgb(tmp_path, name, mode):
    im = load_image(write(tmp_path / name, mode, "JPEG" if name.lower().endswith(("jpg", "jpeg")) else None))
    assert im.mode == "RGB" and im.size == (48, 48)


def test_missing(tmp_path):
    with pytest.raises(DataError, match=r"nope\.png: cannot read image \(No such file"):
        load_image(tmp_path / "nope.png")


def test_empty(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.png: cannot read image \(empty file\); expected a readable PNG/JPEG"):
        load_image(tmp_path / "e.png")


def test_not_an_image(tmp_path):
    (tmp_path / "t.jpg").write_text("hello")
    with pytest.raises(DataError, match=r"t\.jpg: cannot read image"):
        load_image(tmp_path / "t.jpg")


@pytest.mark.parametrize("name", ["x.png", "x.jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated(tmp_path, name, keep):
    full = write(tmp_path / name, fmt="JPEG" if name.endswith("jpg") else None).read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(DataError, match=rf"cut_{name.replace('.', '[.]')}: cannot read image \(.+\); expected"):
        load_image(cut)


def test_png_without_iend(tmp_path):
    full = write(tmp_path / "x.png").read_bytes()
    (tmp_path / "y.png").write_bytes(full[:-12])  # pixel data complete, IEND chunk missing
    with pytest.raises(DataError, match="y.png: cannot read image"):
        load_image(tmp_path / "y.png")
