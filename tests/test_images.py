import numpy as np
import pytest
from PIL import Image

from rpi_agent.errors import ImageError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths


def test_real_photo_loads_as_rgb(faces_dir):
    rgb = load_rgb(faces_dir / "1.jpg")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous


def test_greyscale_palette_alpha_and_16bit_are_converted(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey.png")[:, :, 1], grey)

    Image.fromarray(np.full((4, 4, 4), 200, np.uint8), "RGBA").save(tmp_path / "alpha.png")
    assert load_rgb(tmp_path / "alpha.png").shape == (4, 4, 3)

    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).convert("P").save(tmp_path / "pal.png")
    assert load_rgb(tmp_path / "pal.png").shape == (3, 3, 3)

    deep = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    rgb = load_rgb(tmp_path / "deep.png")
    assert rgb.shape == (2, 2, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, 1, 0] == 255 and rgb[1, 0, 0] == 128 and rgb[1, 1, 0] == 1


def test_one_pixel_image_loads(tmp_path):
    Image.new("RGB", (1, 1), (9, 8, 7)).save(tmp_path / "dot.png")
    assert load_rgb(tmp_path / "dot.png").tolist() == [[[9, 8, 7]]]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image", "not a recognised image"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_rgb(path)


def test_truncated_jpeg(tmp_path, faces_dir):
    data = (faces_dir / "2.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_rgb(path)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ImageError, match="no such image"):
        load_rgb(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="holds no images"):
        list(iter_image_paths([tmp_path]))
    with pytest.raises(ImageError, match="no such image file or folder"):
        list(iter_image_paths([tmp_path / "gone"]))


def test_folder_is_sorted_and_recursive(tmp_path):
    for rel in ("b/2.jpg", "a/1.png", "c.txt", "0.JPG"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in iter_image_paths([tmp_path])]
    assert names == ["0.JPG", "a/1.png", "b/2.jpg"]


def test_detect_and_the_folder_source_read_the_same_images_in_the_same_order(tmp_path):
    from rpi_agent.sources.images import ImageFolderSource

    for rel in ("10.jpg", "2.jpg", "sub/1.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    listed = [p.relative_to(tmp_path).as_posix() for p in iter_image_paths([tmp_path])]
    assert listed == ["2.jpg", "10.jpg", "sub/1.png"]  # natural order, sub-folders included
    played = [p.relative_to(tmp_path).as_posix() for p in ImageFolderSource(tmp_path, camera="demo").paths]
    assert played == listed
