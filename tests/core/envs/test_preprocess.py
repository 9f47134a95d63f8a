"""Frame preprocessing: crops, sizes, V's input layout."""
import numpy as np
import pytest

from wm_studio.core.envs import frames_to_input, input_to_frames
from wm_studio.core.envs.preprocess import (carracing_crop, doom_crop, preprocess_carracing, preprocess_doom,
                                            resize_frame)


def test_frames_to_input_is_nchw_float_in_unit_range():
    frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    x = frames_to_input(frames)
    assert x.shape == (5, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(x[2, 1, 10, 20], frames[2, 10, 20, 1] / 255.0, rtol=1e-6)
    assert frames_to_input(frames[0]).shape == (3, 64, 64)
    np.testing.assert_array_equal(input_to_frames(x), frames)


def test_frames_to_input_refuses_floats():
    with pytest.raises(TypeError):
        frames_to_input(np.zeros((1, 64, 64, 3), np.float32))


def test_input_to_frames_clips():
    out = input_to_frames(np.array([[[[-0.5]], [[0.5]], [[1.5]]]], np.float32))
    assert out.tolist() == [[[[0, 128, 255]]]]


def test_crops_keep_the_paper_rows():
    assert carracing_crop(np.zeros((96, 96, 3), np.uint8)).shape == (84, 96, 3)
    assert doom_crop(np.zeros((480, 640, 3), np.uint8)).shape == (400, 640, 3)
    assert doom_crop(np.zeros((240, 320, 3), np.uint8)).shape == (200, 320, 3)
    assert preprocess_doom(np.zeros((240, 320, 3), np.uint8)).shape == (64, 64, 3)


def test_resize_keeps_a_flat_colour_and_averages_stripes():
    flat = np.full((84, 96, 3), 77, np.uint8)
    assert (resize_frame(flat) == 77).all()
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[::2] = 200
    assert abs(int(resize_frame(stripes).mean()) - 100) <= 3  # an area-like average, not point sampling


def test_dashboard_pixels_do_not_reach_the_observation():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    scribbled = frame.copy()
    scribbled[84:] = rng.integers(0, 256, (12, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_carracing(frame), preprocess_carracing(scribbled))
    above = frame.copy()
    above[83] = 255 - above[83]
    assert not np.array_equal(preprocess_carracing(frame), preprocess_carracing(above))
