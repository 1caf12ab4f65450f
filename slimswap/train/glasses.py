"""Synthetic glasses drawn on training sources, so the generator learns to leave them out.

Why: the warp-guided generator copies the source's texture from the guide, and a source's
glasses come through it as translucent rims over a target without glasses (the demo's Grace
Hopper, Pichai onto Clooney; benchmarks/RESULTS.md). A hand-made rim detector on the source
could not tell rims from skin on large faces (session 6) and a closing took brows with it
(session 7), and no registry package ships a glasses segmenter. Training teaches it instead:
a share of same-person pairs gets frames drawn on the source only, and the known answer (the
target frame, without them) makes the reconstruction loss remove them. Issue 20 asks for
glasses "kept solid or left out, never half-transparent": this is "left out", because the
target's face is hidden from the generator and its own glasses cannot be redrawn in place.

Drawn by hand in torch (distance-field rims, antialiased by one pixel): no library draws
batched shapes on the device, and `face/raster.signed_distance` takes its polygons on the host,
which would cost the training step a host sync; a superellipse is no polygon either.
"""

from __future__ import annotations

import torch

# 68-point layout (dlib's; MediaPipe's mesh is mapped onto it): eyes and the jaw at eye level
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
JAW_RIGHT, JAW_LEFT = 0, 16


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, device=dev, generator=gen)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance (N, H, W) from pixel centres p (1, H, W, 2) to segments a-b (N, 2)."""
    a, b = a[:, None, None], b[:, None, None]
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-6)
    closest = a + t.clamp(0, 1)[..., None] * ab
    return (p - closest).norm(dim=-1)


def _lens_field(
    p: torch.Tensor,
    centre: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    half_w: torch.Tensor,
    half_h: torch.Tensor,
    power: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, approximate distance to the outline), each (N, H, W), of a rotated superellipse lens.

    F = (|u/a|^p + |v/b|^p)^(1/p) is below 1 inside the lens (p = 2 an ellipse, p -> 4 a
    rounded rectangle); |F - 1| / |grad F| is exact on the outline and close within a rim's
    width of it, which is all a rim needs."""
    d = p - centre[:, None, None]
    c, s = cos[:, None, None], sin[:, None, None]
    u = d[..., 0] * c + d[..., 1] * s
    v = -d[..., 0] * s + d[..., 1] * c
    a, b, k = half_w[:, None, None], half_h[:, None, None], power[:, None, None]
    au, av = (u / a).abs().clamp(min=1e-6), (v / b).abs().clamp(min=1e-6)
    f = (au**k + av**k).pow(1 / k)
    fk = f.pow(1 - k)
    gu, gv = fk * au.pow(k - 1) / a, fk * av.pow(k - 1) / b
    return f, (f - 1).abs() / (gu * gu + gv * gv).sqrt().clamp(min=1e-6)


def draw_glasses(img: torch.Tensor, landmarks: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Faces (N, 3, S, S) in [-1, 1] with random glasses drawn on, placed by their 68 points.

    landmarks (N, 68, 2) in crop units. Lens size, shape, tilt (the eye line's), rim width,
    colour (mostly dark, some metal or tinted plastic like Hopper's) and a light lens tint vary
    per face; a bridge joins the lenses and the temples run to the jaw at eye level."""
    n, _, size, _ = img.shape
    dev = img.device
    if n == 0:
        return img
    px = landmarks.float() * size - 0.5
    eye_r, eye_l = px[:, RIGHT_EYE].mean(1), px[:, LEFT_EYE].mean(1)
    axis = eye_l - eye_r
    dist = axis.norm(dim=-1).clamp(min=4.0)
    cos, sin = axis[:, 0] / dist, axis[:, 1] / dist
    down = torch.stack([-sin, cos], -1)  # the face's "down" in the image
    half_w = dist * _uniform(n, 0.34, 0.46, gen, dev)
    half_h = half_w * _uniform(n, 0.55, 0.85, gen, dev)
    power = _uniform(n, 2.0, 4.0, gen, dev)
    drop = (dist * _uniform(n, 0.0, 0.10, gen, dev))[:, None] * down
    c_r, c_l = eye_r + drop, eye_l + drop
    rim = (dist * _uniform(n, 0.025, 0.07, gen, dev)).clamp(min=1.2)

    ys, xs = torch.meshgrid(
        torch.arange(size, device=dev, dtype=torch.float32),
        torch.arange(size, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    p = torch.stack([xs, ys], -1)[None]
    along = torch.stack([cos, sin], -1)
    lift = -0.25 * half_h[:, None] * down  # the bridge sits a little above the lens centres
    lenses = [_lens_field(p, c, cos, sin, half_w, half_h, power) for c in (c_r, c_l)]
    wing = half_w[:, None] * along
    parts = [
        lenses[0][1],
        lenses[1][1],
        _segment_distance(p, c_r + wing + lift, c_l - wing + lift),
        _segment_distance(p, c_r - wing + lift, px[:, JAW_RIGHT] + lift),
        _segment_distance(p, c_l + wing + lift, px[:, JAW_LEFT] + lift),
    ]
    d = torch.stack(parts).amin(0)
    frame = (rim[:, None, None] / 2 - d + 0.5).clamp(0, 1)[:, None]
    lens = ((lenses[0][0] < 1) | (lenses[1][0] < 1)).float()[:, None]

    # colour in [-1, 1]: 60 % near-black, 25 % brown or tinted plastic, 15 % light metal
    kind = torch.rand(n, device=dev, generator=gen)
    base = torch.where(
        kind < 0.6,
        _uniform(n, -1.0, -0.6, gen, dev),
        torch.where(kind < 0.85, _uniform(n, -0.6, 0.1, gen, dev), _uniform(n, 0.1, 0.7, gen, dev)),
    )
    tint = 0.35 * (torch.rand(n, 3, device=dev, generator=gen) - 0.5)
    colour = (base[:, None] + tint).clamp(-1, 1)[:, :, None, None]
    # a light tint of the lenses on 30 % of the faces (sunglasses are out of scope)
    tint_alpha = (
        torch.where(
            torch.rand(n, device=dev, generator=gen) < 0.3, _uniform(n, 0.05, 0.25, gen, dev), 0.0
        )[:, None, None, None]
        * lens
    )
    out = img * (1 - tint_alpha) + colour * tint_alpha
    return out * (1 - frame) + colour * frame
