"""The device's YUV 4:2:0 conversions (`video_planes`) against swscale's, which the CPU path
uses (`media.read_frames`, `VideoWriter`): the GPU frame path decodes to planes and converts
them itself, so its frames must be the CPU path's frames, and its planes the writer's."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from slimswap import media
from slimswap.paths import EXAMPLES_DIR
from slimswap.video_planes import i420_to_rgb, rgb_to_i420
from slimswap.yuv import add_luma_change


def _frame(path, index: int = 5) -> av.VideoFrame:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(c.streams.video[0])):
            if i == index:
                return f
    raise AssertionError("clip too short")


def _decoded(path) -> tuple[np.ndarray, np.ndarray]:
    """(swscale's RGB, the device conversion's RGB) of one frame."""
    f = _frame(path)
    fmt = media.plane_format(path)
    planes = torch.from_numpy(f.to_ndarray(format="yuv420p"))[None]
    got = i420_to_rgb(planes, fmt.matrix, fmt.full_range)[0].permute(1, 2, 0).numpy()
    return media._rgb(f), got


def _videos(shared_data) -> list:
    return [EXAMPLES_DIR / "clip.mp4", shared_data / "videos" / "liveportrait_source_s32.mp4"]


def test_plane_format_follows_the_colour_tag(shared_data):
    assert media.plane_format(EXAMPLES_DIR / "clip.mp4") == media.PlaneFormat("bt709", False)
    # untagged, as most phone and web clips: swscale takes BT.601, and so do the planes
    untagged = shared_data / "videos" / "liveportrait_source_s32.mp4"
    assert int(_frame(untagged).colorspace) == 2
    assert media.plane_format(untagged) == media.PlaneFormat("bt601", False)


def test_decoding_on_the_device_gives_swscales_frames(shared_data):
    """Measured: max 2-4 grey levels at chroma edges, mean 0.03-0.06; the wrong matrix (BT.601
    read as BT.709) gives mean 0.6-2.1 and centre-sited chroma max 5-9 (video_planes)."""
    for path in _videos(shared_data):
        want, got = _decoded(path)
        diff = np.abs(got - want)
        assert diff.mean() < 0.1 and diff.max() <= 6, (path.name, diff.mean(), diff.max())


def test_encoding_on_the_device_gives_the_writers_planes(shared_data):
    for path in _videos(shared_data):
        rgb = media._rgb(_frame(path))
        info = media.probe_video(path)
        want = media.VideoWriter(path.with_suffix(".unused.mp4"), info, None)._yuv(rgb)
        got = rgb_to_i420(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].numpy()
        diff = np.abs(got.astype(int) - want.to_ndarray())
        assert diff.max() <= 1 and diff.mean() < 0.05, (path.name, diff.mean())


def test_a_luma_change_goes_into_y_alone():
    """The marks' change (R, G and B alike) carried into the planes equals converting the
    changed frame, to one level of Y; U and V stay as they were."""
    rgb = media.read_image(EXAMPLES_DIR / "astronaut.png")
    rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
    change = np.random.default_rng(0).integers(-3, 4, rgb.shape[:2])[..., None]
    changed = np.clip(rgb.astype(int) + change, 0, 255).astype(np.uint8)
    to_planes = lambda x: rgb_to_i420(torch.from_numpy(x).permute(2, 0, 1)[None])[0].numpy()
    got = add_luma_change(to_planes(rgb), rgb, changed).astype(int)
    want = to_planes(changed).astype(int)
    h = rgb.shape[0]
    assert np.abs(got[:h] - want[:h]).max() <= 1
    assert (got[:h] != to_planes(rgb)[:h]).mean() > 0.5  # the change did arrive
    # chroma: untouched by construction; a conversion of the changed frame moves it only
    # where clipping made the change unequal across channels
    assert np.array_equal(got[h:], to_planes(rgb)[h:].astype(int))
    assert np.abs(got[h:] - want[h:]).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (CI has none)")
def test_cuda_conversions_match_the_cpu_ones(shared_data):
    planes = torch.from_numpy(_frame(_videos(shared_data)[1]).to_ndarray(format="yuv420p"))[None]
    cpu = i420_to_rgb(planes)
    gpu = i420_to_rgb(planes.cuda()).cpu()
    assert (cpu - gpu).abs().max() <= 1
    assert (rgb_to_i420(cpu).int() - rgb_to_i420(cpu.cuda()).cpu().int()).abs().max() <= 1
