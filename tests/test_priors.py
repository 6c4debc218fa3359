import numpy as np
import pytest

from rpi_agent.detection.priors import PriorSpec, generate_priors


def test_counts_match_the_network_outputs():
    assert generate_priors(PriorSpec(320, 240)).shape == (4420, 4)
    assert generate_priors(PriorSpec(640, 480)).shape == (17640, 4)
    assert PriorSpec(480, 360).count == generate_priors(PriorSpec(480, 360)).shape[0]


def test_known_values_and_order():
    p = generate_priors(PriorSpec(320, 240))
    # First cell of the stride-8 map, its three sizes in order.
    np.testing.assert_allclose(p[0], [4 / 320, 4 / 240, 10 / 320, 10 / 240], rtol=1e-6)
    np.testing.assert_allclose(p[1, 2:], [16 / 320, 16 / 240], rtol=1e-6)
    np.testing.assert_allclose(p[2, 2:], [24 / 320, 24 / 240], rtol=1e-6)
    # Next cell to the right: x advances by one stride, y stays.
    np.testing.assert_allclose(p[3], [12 / 320, 4 / 240, 10 / 320, 10 / 240], rtol=1e-6)
    # First cell of the second row of the stride-8 map (40 cells per row, 3 priors each).
    np.testing.assert_allclose(p[120, :2], [4 / 320, 12 / 240], rtol=1e-6)
    # Last prior: stride 64 map is 5x4; centre (4.5*64/320, 3.5*64/240); 256/240 clipped to 1.
    np.testing.assert_allclose(p[-1], [0.9, 3.5 * 64 / 240, 0.8, 1.0], rtol=1e-6)
    assert p.dtype == np.float32
    assert p.min() >= 0.0 and p.max() <= 1.0


def test_width_and_height_are_not_swapped():
    wide = generate_priors(PriorSpec(640, 240))
    assert wide[0, 2] == pytest.approx(10 / 640)
    assert wide[0, 3] == pytest.approx(10 / 240)


def test_bad_spec_rejected():
    with pytest.raises(ValueError):
        PriorSpec(0, 240)
    with pytest.raises(ValueError):
        PriorSpec(320, 240, strides=(8, 16))
