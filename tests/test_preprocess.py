import numpy as np
import pytest

from rpi_agent.detection.preprocess import PAD_VALUE, fit_to_input


def test_model_sized_frame_passes_through_untouched():
    rgb = np.zeros((240, 320, 3), np.uint8)
    out, mapping = fit_to_input(rgb, 320, 240, "letterbox")
    assert out is rgb
    np.testing.assert_array_equal(mapping.to_frame(np.array([[1.0, 2, 3, 4]])), [[1, 2, 3, 4]])


def test_stretch_maps_boxes_back():
    rgb = np.zeros((480, 1280, 3), np.uint8)
    out, mapping = fit_to_input(rgb, 320, 240, "stretch")
    assert out.shape == (240, 320, 3)
    np.testing.assert_allclose(mapping.to_frame(np.array([[32.0, 24, 64, 48]])), [[128, 48, 256, 96]])


def test_letterbox_pads_centred_and_maps_back():
    rgb = np.full((480, 1280, 3), 255, np.uint8)  # 8:3 frame into a 4:3 input: bands top and bottom
    out, mapping = fit_to_input(rgb, 320, 240, "letterbox")
    assert out.shape == (240, 320, 3)
    assert (out[:60] == PAD_VALUE).all() and (out[-60:] == PAD_VALUE).all()
    assert (out[60:180] == 255).all()
    # The whole frame maps to the unpadded band.
    np.testing.assert_allclose(mapping.to_frame(np.array([[0.0, 60, 320, 180]])), [[0, 0, 1280, 480]])


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match="resize mode"):
        fit_to_input(np.zeros((10, 10, 3), np.uint8), 320, 240, "crop")  # type: ignore[arg-type]
