"""Synthetic corruptions of healthy slices for the self-supervised restoration model.

The restoration model (:mod:`.restoration`) learns on healthy slices only, from
corruptions made here: a foreign patch blended in under a random smooth shape (FPI [1]_,
the forward process of DISYRE [2]_), optionally with a tissue-band intensity bias (the
"DAG" of DISYRE v2 [3]_), and a thick-slice simulation that is *healthy* acquisition
variability (issue 15, item 3; gamma, bias field and noise come from
:mod:`anomaly_maps.augment` in the training loop).

Written apart from the benchmark's anomaly generator (:mod:`anomaly_maps.benchmark`,
spheres with a constant, noise, shift, mirror, sink or source): no import from it, no
spheres or boxes, and another blend rule (a linear interpolation towards another
subject's tissue under a soft mask). A model tuned to the benchmark's own generator would
measure the generator, not anomalies (issue 15, item 2); ``tests/models`` checks this
module imports nothing from the benchmark.

Shapes: an ellipse-like envelope at a random centre, size, elongation and orientation
whose level set is perturbed by coarse bicubic noise, so borders are irregular and
lobed, then passed through a sigmoid for a soft edge. DISYRE draws its shapes from a
bank of 3D masks (``experiments/shapes/*.nii.gz``, reference code at e149f29) that we
do not ship; the perturbed level set is our stand-in with the same purpose (varied,
smooth, non-geometric shapes).

Every draw goes through :func:`~.draws.normal`/:func:`~.draws.uniform`/
:func:`~.draws.integers`: a ``torch.Generator`` for training, per-slice generators for
reproducible tests.

References
----------
.. [1] Tan, Hou, Batten, Kainz, "Detecting Outliers with Foreign Patch Interpolation",
   MELBA 2022 / MOOD 2020: ``x' = (1 - alpha) x + alpha x_fp`` inside a patch, the
   network predicts ``alpha`` per pixel.
.. [2] Naval Marimont et al., "DISYRE: Diffusion-Inspired SYnthetic REstoration for
   Unsupervised Anomaly Detection", ISBI 2024 (arXiv 2311.15453), Method:
   ``x_t = (1 - alpha_t m) x_0 + alpha_t m x_fp``; reference code
   ``preprocessing/fpi.py`` (GitHub snavalm/disyre at e149f29).
.. [3] Naval Marimont et al., "Ensembled Cold-Diffusion Restorations for Unsupervised
   Anomaly Detection", MICCAI 2024 (arXiv 2407.06635), Method (DAG: shape, texture
   and intensity bias drawn apart); reference code ``preprocessing/bias.py``.
.. [4] Li, Sohn, Yoon, Pfister, "CutPaste: Self-Supervised Learning for Anomaly
   Detection and Localization", CVPR 2021, Sec. 3.1: a patch of the image itself,
   pasted at another place of it.
.. [5] Schlueter, Tan, Hou, Kainz, "Natural Synthetic Anomalies for Self-supervised
   Anomaly Detection and Localization", ECCV 2022, Sec. 3.1: source patches resized
   before they are blended in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._config import is_range
from .draws import Generators, integers, normal, uniform

__all__ = [
    "DEFAULT_CENTRES",
    "DEFAULT_LOCAL",
    "LOCAL_CHANGES",
    "Corruption",
    "corrupt",
    "foreign_patches",
    "shape_masks",
    "thick_slices",
    "valid_local_changes",
]

MODES = ("fpi", "dag", "mix")


@dataclass(frozen=True)
class Corruption:
    """A corrupted batch and what the model learns to recover from it.

    Attributes
    ----------
    corrupted
        ``(B, C, H, W)`` input ``x_t``.
    clean
        ``(B, C, H, W)`` target ``x_0`` (after healthy thick-slice simulation).
    level
        ``(B,)`` corruption level ``alpha_t`` in [0, 1] (DISYRE's step).
    alpha_map
        ``(B, 1, H, W)`` per-pixel corruption in [0, 1] (FPI's target).
    """

    corrupted: torch.Tensor
    clean: torch.Tensor
    level: torch.Tensor
    alpha_map: torch.Tensor


DEFAULT_CENTRES = (0.2, 0.8)
"""The range of the corruption shapes' centres along each axis, fractions of the slice,
when none is given (that of the first models; it favours the middle of the slice)."""


def shape_masks(
    batch: int,
    size: int,
    generator: Generators,
    *,
    radius: tuple[float, float] = (0.08, 0.3),
    centres: tuple[float, float] = DEFAULT_CENTRES,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Soft random shapes ``(B, 1, size, size)`` in [0, 1], one per slice.

    ``radius`` is the (min, max) mean radius as a fraction of ``size``, ``centres`` the
    range of the centre along each axis (fractions of the slice; over the whole slice,
    ``(0, 1)``, every pixel is as often under a shape, while the default favours the
    middle of the slice: deep brain more than its edge); each shape gets an elongation
    in [1, 2.5], an orientation, a border roughness from a 5x5 bicubic noise grid and an
    edge softness of 1-3 % of the slice.
    """
    u = uniform((batch, 7), generator, device=device, dtype=dtype)
    centre = centres[0] + (centres[1] - centres[0]) * u[:, :2]
    mean_r = radius[0] + (radius[1] - radius[0]) * u[:, 2]
    stretch = 1.0 + 1.5 * u[:, 3]
    angle = math.pi * u[:, 4]
    rough = 0.15 + 0.35 * u[:, 5]
    soft = 0.01 + 0.02 * u[:, 6]
    grid = normal((batch, 1, 5, 5), generator, device=device, dtype=dtype)
    axis = (torch.arange(size, device=device, dtype=dtype) + 0.5) / size
    rows = axis[None, :, None] - centre[:, 0, None, None]
    cols = axis[None, None, :] - centre[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    along, across = cos * rows + sin * cols, -sin * rows + cos * cols
    r_along = (mean_r * stretch.sqrt())[:, None, None]
    r_across = (mean_r / stretch.sqrt())[:, None, None]
    distance = torch.sqrt((along / r_along) ** 2 + (across / r_across) ** 2)
    wobble = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)[:, 0]
    level = 1.0 - distance + rough[:, None, None] * wobble
    edge = (soft / mean_r)[:, None, None]
    return torch.sigmoid(level / edge)[:, None]


def foreign_patches(
    x: torch.Tensor, generator: Generators, *, own_prob: float = 0.0
) -> torch.Tensor:
    """Another slice of the batch for each slice, randomly flipped and shifted.

    Slice ``b`` takes slice ``(b + k) mod B`` with ``k`` drawn in ``[1, B - 1]`` (itself
    when ``B = 1``), flipped up-down and left-right each with probability 1/2, and rolled
    by up to a quarter of the slice in each direction, so the tissue comes from another
    place of another subject (FPI [1]_; DISYRE samples patches from other images).

    With probability ``own_prob`` a slice takes its *own* tissue instead, flipped as
    above and rolled by 1/16 to 1/4 of the slice along each axis (never in place): tissue
    of the same scan from elsewhere, as CutPaste [4]_ pastes a patch of the image itself.
    These draws come after the others, so ``own_prob=0`` keeps the random stream.
    """
    batch, _, height, width = x.shape
    k = integers(1, max(batch, 2), (batch,), generator, device=x.device) % max(batch, 1)
    partner = (torch.arange(batch, device=x.device) + k) % batch
    flips = uniform((batch, 2), generator, device=x.device) < 0.5
    shift = integers(-height // 4, height // 4 + 1, (batch, 2), generator, device=x.device)
    if own_prob > 0:
        u = uniform((batch, 5), generator, device=x.device)
        own = u[:, 0] < own_prob
        sides = torch.tensor([height, width], device=x.device)
        low, high = (sides // 16).clamp_min(1), sides // 4
        offset = low + (u[:, 1:3] * (high - low + 1)).long().clamp_max(high - low)
        offset = torch.where(u[:, 3:5] < 0.5, -offset, offset)
        partner = torch.where(own, torch.arange(batch, device=x.device), partner)
        shift = torch.where(own[:, None], offset, shift)
    out = x[partner]
    out = torch.where(flips[:, 0, None, None, None], out.flip(-2), out)
    out = torch.where(flips[:, 1, None, None, None], out.flip(-1), out)
    rows = (torch.arange(height, device=x.device)[None, :] - shift[:, :1]) % height
    cols = (torch.arange(width, device=x.device)[None, :] - shift[:, 1:]) % width
    out = out.gather(2, rows[:, None, :, None].expand_as(out))
    return out.gather(3, cols[:, None, None, :].expand_as(out))


def thick_slices(
    x: torch.Tensor, generator: Generators, *, max_factor: int = 3, prob: float = 0.5
) -> torch.Tensor:
    """Simulate a thicker acquisition: average ``k`` pixels along one in-plane axis.

    With probability ``prob`` a slice is down-sampled by a factor ``k`` in
    ``[2, max_factor]`` along its rows or its columns (box average, stride ``k``) and
    linearly interpolated back, as a 2-3 mm scan cut across its slices looks after
    resampling to the model grid (issue 15, item 3). Other slices are returned unchanged.
    """
    batch, _, height, width = x.shape
    draw = uniform((batch, 3), generator, device=x.device)
    factor = 2 + (draw[:, 1] * (max_factor - 1)).long().clamp_max(max_factor - 2)
    along_rows = draw[:, 2] < 0.5
    out = x
    for k in range(2, max_factor + 1):
        for rows_axis, kernel in ((True, (k, 1)), (False, (1, k))):
            pick = (draw[:, 0] < prob) & (factor == k) & (along_rows == rows_axis)
            if not bool(pick.any()):
                continue
            low = F.avg_pool2d(x, kernel, stride=kernel, ceil_mode=True)
            back = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
            out = torch.where(pick[:, None, None, None], back, out)
    return out


def _masked_range(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice min and max of ``x`` where ``mask`` (``(B, 1, 1, 1)`` each); the whole
    slice's where the mask is empty."""
    big = torch.finfo(x.dtype).max
    low = torch.where(mask, x, big).flatten(1).amin(1)
    high = torch.where(mask, x, -big).flatten(1).amax(1)
    empty = ~mask.flatten(1).any(1)
    low = torch.where(empty, x.flatten(1).amin(1), low)
    high = torch.where(empty, x.flatten(1).amax(1), high)
    return low[:, None, None, None], high[:, None, None, None]


def _tissue_bias(
    x: torch.Tensor, shape: torch.Tensor, foreground: torch.Tensor, generator: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """DISYRE v2's intensity bias: brighten or darken one intensity band inside the shape.

    The reference code (``preprocessing/bias.py``) quantises the image with a fixed
    5-centroid codebook and picks tissue classes; we pick a band of 30 % of the slice's
    foreground range at a random height (normalisation-agnostic), smooth its edge with a
    3x3 mean, and add ``sign * a * range`` with ``a ~ U(0, 1)``, clipped to the range.
    Returns the biased slices and the per-pixel ``|change| / range``.
    """
    batch = x.shape[0]
    lo, hi = _masked_range(x, foreground)
    span = (hi - lo).clamp_min(1e-6)
    u = uniform((batch, 3), generator, device=x.device, dtype=x.dtype)[:, :, None, None, None]
    band_lo = lo + 0.7 * u[:, 0] * span
    band = ((x >= band_lo) & (x <= band_lo + 0.3 * span) & foreground).to(x.dtype)
    band = F.avg_pool2d(band, 3, stride=1, padding=1, count_include_pad=False)
    sign = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    change = sign * u[:, 2] * span * band * shape
    biased = torch.where(change != 0, (x + change).clamp(lo, hi), x)
    return biased, (biased - x).abs() / span


def _blurred(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its fine detail smoothed away: two box filters of about 1/16 of the
    slice (a near-Gaussian of that width), edges replicated."""
    k = max(3, x.shape[-1] // 16 | 1)
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return x


def _identity_grid(x: torch.Tensor) -> torch.Tensor:
    """The ``grid_sample`` grid that samples ``x`` ``(B, C, H, W)`` where it is:
    ``(1, H, W, 2)``, (column, row) in [-1, 1], corners aligned."""
    height, width = x.shape[-2:]
    rows = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
    cols = torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype)
    return torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1)[None]


def _warped(x: torch.Tensor, shape: torch.Tensor, level: torch.Tensor, generator) -> torch.Tensor:
    """``x`` locally displaced under the shape: a smooth random field (a 4x4 grid of
    vectors, bicubic), scaled to at most ``level`` x 6 % of the slice width where the
    shape is 1 and fading with it, applied with bilinear resampling."""
    batch, _, height, width = x.shape
    coarse = normal((batch, 2, 4, 4), generator, device=x.device, dtype=x.dtype)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    field = field / field.flatten(1).abs().amax(1).clamp_min(1e-6)[:, None, None, None]
    field = field * shape * (0.12 * level)[:, None, None, None]  # grid units: 2 = the width
    grid = _identity_grid(x) + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _zoomed(x: torch.Tensor, shape: torch.Tensor, level: torch.Tensor, generator) -> torch.Tensor:
    """``x`` magnified or shrunk about the shape's centre of mass ``c`` by up to a factor
    ``f = 2 ** (+-level)`` (sign drawn): sampled at ``p + (c - p) (1 - 1 / f) w(p)``,
    bilinear, with ``w`` the shape times a Gaussian bump about ``c`` of the shape's rms
    radius, so the change is largest at the centre and fades inside the shape. A scaled
    copy of the slice's own tissue in place, as NSA resizes its source patches
    (Schlueter et al. [5]_, Sec. 3.1); what a mass pushing tissue apart or an atrophy
    drawing it in does to a region."""
    batch = x.shape[0]
    sign = torch.where(uniform((batch,), generator, device=x.device) < 0.5, -1.0, 1.0)
    factor = torch.exp(sign.to(x.dtype) * level * math.log(2.0))[:, None, None, None]
    grid = _identity_grid(x)
    mask = shape[:, 0, :, :, None]  # (B, H, W, 1)
    mass = mask.sum((1, 2), keepdim=True).clamp_min(1e-6)
    centre = (grid * mask).sum((1, 2), keepdim=True) / mass
    dist2 = ((grid - centre) ** 2).sum(-1, keepdim=True)
    spread = (dist2 * mask).sum((1, 2), keepdim=True) / mass
    weight = mask * torch.exp(-dist2 / (2 * spread.clamp_min(1e-6)))
    grid = grid + (centre - grid) * (1 - 1 / factor).permute(0, 2, 3, 1) * weight
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


LOCAL_CHANGES = ("noise", "blur", "warp", "zoom")
DEFAULT_LOCAL = ("noise", "blur", "warp")
"""The local changes ``mode="mix"`` draws from when none are named (those of the first
``mix`` models; ``zoom`` came later and is named when wanted)."""


def valid_local_changes(local: object) -> bool:
    """Whether ``local`` is a non-empty tuple of distinct names of :data:`LOCAL_CHANGES`."""
    return (
        isinstance(local, tuple)
        and len(local) > 0
        and len(set(local)) == len(local)
        and all(k in LOCAL_CHANGES for k in local)
    )


def _local_changes(
    clean: torch.Tensor,
    shape: torch.Tensor,
    level: torch.Tensor,
    foreground: torch.Tensor,
    generator: Generators,
    kinds: tuple[str, ...] = DEFAULT_LOCAL,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``kinds`` of local change (of :data:`LOCAL_CHANGES`: noise, blur, warp, zoom) of
    ``clean`` under ``shape`` at ``level``, each ``(B, C, H, W)``, in a
    ``(len(kinds), B, C, H, W)`` stack; and the slices' choice among them or the foreign
    patch (``(B,)`` in ``0..len(kinds)``, 0 the patch, half of the slices)."""
    batch = clean.shape[0]
    u = uniform((batch, 2), generator, device=clean.device, dtype=clean.dtype)
    a = level[:, None, None, None] * shape
    changes = []
    if "noise" in kinds:
        lo, hi = _masked_range(clean, foreground)
        sigma = (0.1 + 0.3 * u[:, 1])[:, None, None, None] * (hi - lo)
        noise = normal(clean.shape, generator, device=clean.device, dtype=clean.dtype)
        changes.append((clean + a * sigma * noise).clamp(lo, hi))
    if "blur" in kinds:
        changes.append((1 - a) * clean + a * _blurred(clean))
    if "warp" in kinds:
        changes.append(_warped(clean, shape, level, generator))
    if "zoom" in kinds:
        changes.append(_zoomed(clean, shape, level, generator))
    changes = torch.where(a > 0, torch.stack(changes), clean)
    n = len(kinds)
    bounds = torch.tensor([0.5 + 0.5 * k / n for k in range(n)], device=clean.device)
    return changes, torch.bucketize(u[:, 0].contiguous(), bounds)


def corrupt(
    x: torch.Tensor,
    generator: Generators,
    *,
    mode: str = "fpi",
    radius: tuple[float, float] = (0.08, 0.3),
    level_range: tuple[float, float] = (0.0, 1.0),
    thick_prob: float = 0.0,
    local: tuple[str, ...] = DEFAULT_LOCAL,
    own_patch: float = 0.0,
    centres: tuple[float, float] = DEFAULT_CENTRES,
) -> Corruption:
    """Corrupt healthy slices ``(B, C, H, W)`` as DISYRE's forward process does.

    ``x_0`` is ``x`` after :func:`thick_slices` (healthy variability). Then, with the
    level ``alpha ~ U(level_range)`` per slice, a shape ``m`` (:func:`shape_masks`,
    restricted to the foreground, i.e. above the slice's minimum, as the reference code's
    ``no_anom_in_background``) and a foreign patch ``x_fp`` (:func:`foreign_patches`)::

        x_t = (1 - alpha m) x_0 + alpha m x_fp                       (mode "fpi")

    For ``mode="dag"`` (DISYRE v2) the foreign patch is first rescaled to the slice's
    foreground range under the shape (the reference's ``normalize_fp="minmax"``,
    clipped to that range as the reference clips to [0, 1]) and
    an intensity bias is added in a tissue band (:func:`_tissue_bias`); the level is the
    larger of the two corruption strengths and the per-pixel target the larger of
    ``alpha m`` and the bias change, as in the reference trainer (``amax`` of
    ``alpha_texture`` and ``alpha_bias``).

    ``mode="mix"`` keeps the DAG corruption for half of the slices and gives the other
    half, in equal shares, one change of the tissue's own texture or geometry under the
    shape at the same level (:func:`_local_changes`): added noise
    (``x_0 + alpha m sigma n``, ``sigma`` 10-40 % of the foreground range), lost detail
    (``(1 - alpha m) x_0 + alpha m blur(x_0)``) or a local warp (displacement up to
    ``alpha`` x 6 % of the slice), or, named in ``local``, a magnification or shrinkage
    about the shape's centre by up to 2x (:func:`_zoomed`); ``local`` names the kinds drawn
    from, in equal shares (noise, blur and warp by default). The papers' foreign
    patches carry another place's tissue, never a change of the local texture or a
    displacement, which real lesions also show (mass effect, oedema, atrophy); the
    per-pixel target stays ``alpha m``.

    ``own_patch`` is the probability that a slice's foreign patch is its own tissue from
    elsewhere in the slice (:func:`foreign_patches`, CutPaste [4]_), in every mode;
    ``centres`` the range of the shapes' centres (:func:`shape_masks`).
    """
    if mode not in MODES:
        raise ValueError(f"corruption mode {mode!r}: expected 'fpi', 'dag' or 'mix'")
    if not valid_local_changes(tuple(local)):
        raise ValueError(f"local changes {local!r}: expected distinct names of {LOCAL_CHANGES}")
    if not 0 <= own_patch <= 1:
        raise ValueError(f"own_patch={own_patch!r}: expected a probability in [0, 1]")
    for name, pair in (("radius", radius), ("level_range", level_range), ("centres", centres)):
        if not is_range(pair, 0, 1):
            raise ValueError(f"{name}={pair!r}: expected (low, high) with 0 <= low < high <= 1")
    if radius[0] <= 0:
        raise ValueError(f"radius={radius!r}: expected a smallest radius above 0")
    batch, _, size, _ = x.shape
    clean = thick_slices(x, generator, prob=thick_prob) if thick_prob > 0 else x
    foreground = clean > clean.flatten(1).amin(1)[:, None, None, None]
    foreground = foreground.any(1, keepdim=True)
    shape = shape_masks(
        batch, size, generator, radius=radius, centres=centres, device=x.device, dtype=x.dtype
    )
    shape = shape * foreground
    level = level_range[0] + (level_range[1] - level_range[0]) * uniform(
        (batch,), generator, device=x.device, dtype=x.dtype
    )
    patch = foreign_patches(clean, generator, own_prob=own_patch)
    if mode != "fpi":
        inside = shape > 0.5
        patch_tissue = patch > patch.flatten(1).amin(1)[:, None, None, None]
        p_lo, p_hi = _masked_range(patch, inside & patch_tissue)
        x_lo, x_hi = _masked_range(clean, inside & foreground)
        p_span = p_hi - p_lo
        rescaled = (patch - p_lo) / p_span.clamp_min(1e-6) * (x_hi - x_lo) + x_lo
        # a flat patch has no range to map: shift it onto the slice's range instead
        patch = torch.where(p_span > 1e-3, rescaled, patch - p_lo + x_lo).clamp(x_lo, x_hi)
    alpha_map = level[:, None, None, None] * shape
    corrupted = (1 - alpha_map) * clean + alpha_map * patch
    if mode == "fpi":
        return Corruption(corrupted, clean, level, alpha_map)
    if mode == "mix":  # drawn before the bias, so "dag" keeps its random stream
        changes, kind = _local_changes(clean, shape, level, foreground, generator, local)
    corrupted, bias_map = _tissue_bias(corrupted, shape, foreground, generator)
    bias_alpha = torch.maximum(alpha_map, bias_map.amax(1, keepdim=True))
    bias_level = torch.maximum(level, bias_map.flatten(1).amax(1))
    if mode == "dag":
        return Corruption(corrupted, clean, bias_level, bias_alpha)
    patched = (kind == 0)[:, None, None, None]
    local = changes[(kind - 1).clamp_min(0), torch.arange(batch, device=x.device)]
    return Corruption(
        torch.where(patched, corrupted, local),
        clean,
        torch.where(kind == 0, bias_level, level),
        torch.where(patched, bias_alpha, alpha_map),
    )
