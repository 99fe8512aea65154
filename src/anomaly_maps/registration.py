"""Rigid then affine registration of a scan to a template, and resampling between grids.

:func:`register` finds the world-to-world affine that takes a point of the template
(fixed) to the same anatomy in the scan (moving), with SimpleITK's registration
framework (Lowekamp et al. 2013, Front. Neuroinform. 7:45; Yaniv et al. 2018, J. Digit.
Imaging 31:290): moments initialisation, then a rigid (Euler) and an affine stage, each
multi-resolution, maximising Mattes mutual information (Mattes et al. 2003, IEEE TMI
22:120), so scans of another contrast scale or scanner register too. ITK's physical
space is LPS; the affines here are RAS (nibabel's), converted at the boundary.

:func:`resample` puts voxels of one grid onto another through such an affine with
:func:`scipy.ndimage.affine_transform` (trilinear for maps and scans, nearest for masks).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import AnomalyMapsError
from .io import Volume
from .preprocessing import foreground_mask

__all__ = ["MIN_OVERLAP_DICE", "RegistrationError", "register", "resample"]

#: Below this Dice between the registered scan's foreground and the template's, the
#: registration is taken to have failed (a scan of another body part, a mask that does
#: not overlap, an optimiser lost in a local optimum).
MIN_OVERLAP_DICE = 0.6
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_LEVELS_MM = (6.0, 3.0, 0.0)  # voxel size of each level (at most; 0: the template's own)
_SMOOTH_MM = (2.0, 1.0, 0.0)
_MIN_SAMPLES = 5000  # metric samples inside the template's mask at every level
_THREADS = 4  # fixed, so that a scan registers the same on every machine


class RegistrationError(AnomalyMapsError):
    """A scan could not be registered to the model's template."""


def _to_itk(volume: Volume, data: np.ndarray | None = None):
    """A SimpleITK image with the volume's geometry (ITK's LPS, array in z, y, x order)."""
    import SimpleITK as sitk

    lps = _LPS @ volume.affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise RegistrationError(
            f"{volume.path or 'volume'}: its affine shears the voxel axes; expected "
            "orthogonal axes (reslice the scan first) to register it"
        )
    values = np.asarray(volume.data if data is None else data, dtype=np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def _itk_affine(transform) -> np.ndarray:
    """4x4 LPS matrix of an ITK affine-like transform (fixed point -> moving point)."""
    matrix = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    centre = np.asarray(transform.GetCenter(), dtype=float)
    translation = np.asarray(transform.GetTranslation(), dtype=float)
    out = np.eye(4)
    out[:3, :3] = matrix
    out[:3, 3] = translation + centre - matrix @ centre
    return out


def _stage(fixed, moving, fixed_mask, transform, seed: int):
    """One multi-resolution Mattes-MI stage from ``transform``; returns the fitted one."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    spacing = min(fixed.GetSpacing())
    shrinks = [max(1, round(mm / spacing)) for mm in _LEVELS_MM]
    method.SetMetricSamplingStrategy(method.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock" (sitkWallClock): shift by one
    percentages = _sampling_percentages(fixed_mask, shrinks)
    method.SetMetricSamplingPercentagePerLevel(percentages, seed + 1)
    method.SetMetricFixedMask(fixed_mask)
    method.SetNumberOfThreads(_THREADS)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=200, relaxationFactor=0.5
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrinks)
    method.SetSmoothingSigmasPerLevel(list(_SMOOTH_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=False)
    fitted = method.Execute(fixed, moving)
    return fitted, method.GetMetricValue()


def _sampling_percentages(fixed_mask, shrinks: list[int]) -> list[float]:
    """Per-level share of the template's voxels sampled by the metric: 5 % where that
    leaves at least :data:`_MIN_SAMPLES` inside its mask, more where it does not.

    A fixed 5 % left a few hundred samples at the coarsest level of a 4 mm template,
    and one random seed in three then fitted a wrong local optimum (11-40 mm off).
    """
    import SimpleITK as sitk

    inside = max(float(sitk.GetArrayViewFromImage(fixed_mask).sum()), 1.0)
    return [min(1.0, max(0.05, _MIN_SAMPLES * s**3 / inside)) for s in shrinks]


def _coarsened(volume: Volume, spacing: float) -> Volume:
    """The volume smoothed and strided to voxels of about ``spacing`` along each axis
    finer than that: the registration's finest level never reads the finer detail, and
    a 1 mm scan costs a quarter of the time."""
    step = np.maximum(1, np.round(spacing / volume.zooms)).astype(int)
    if (step == 1).all():
        return volume
    smooth = ndimage.gaussian_filter(np.asarray(volume.data, np.float32), sigma=0.5 * (step - 1))
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] * step
    data = smooth[:: step[0], :: step[1], :: step[2]]
    return Volume(np.ascontiguousarray(data), affine, volume.path)


def register(moving: Volume, fixed: Volume, *, seed: int = 0) -> np.ndarray:
    """The 4x4 RAS world affine taking points of ``fixed`` (the template) to ``moving``.

    Rigid, then affine, both from a moments (centre-of-mass) start, on ``moving``
    coarsened to about the template's voxel size. The result is
    checked: the moving foreground brought onto the template grid must overlap the
    template's foreground with Dice >= :data:`MIN_OVERLAP_DICE`.

    Raises
    ------
    RegistrationError
        No foreground, an optimiser failure (e.g. no overlap left), a non-finite
        metric or too little overlap; one line naming the scan.
    """
    import SimpleITK as sitk

    name = moving.path or "volume"
    moving = _coarsened(moving, float(min(fixed.zooms)))
    moving_fg = foreground_mask(moving.data)
    fixed_fg = foreground_mask(fixed.data)
    if not moving_fg.any():
        raise RegistrationError(f"{name}: no foreground to register (the scan is constant)")
    fixed_image, moving_image = _to_itk(fixed), _to_itk(moving)
    fixed_mask = sitk.Cast(_to_itk(fixed, fixed_fg), sitk.sitkUInt8)
    try:
        start = sitk.CenteredTransformInitializer(
            fixed_image, moving_image, sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )  # fmt: skip
        rigid, _ = _stage(fixed_image, moving_image, fixed_mask, start, seed)
        affine = sitk.AffineTransform(3)
        euler = sitk.Euler3DTransform(sitk.CompositeTransform(rigid).GetNthTransform(0))
        affine.SetCenter(euler.GetCenter())
        affine.SetMatrix(euler.GetMatrix())
        affine.SetTranslation(euler.GetTranslation())
        fitted, metric = _stage(fixed_image, moving_image, fixed_mask, affine, seed)
        lps = _itk_affine(sitk.AffineTransform(sitk.CompositeTransform(fitted).GetNthTransform(0)))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1][:160]
        raise RegistrationError(
            f"{name}: registration to the model's template failed ({reason}); "
            "check that the scan is a brain, or score it with --space native"
        ) from err
    if not np.isfinite(metric):
        raise RegistrationError(f"{name}: registration metric did not converge (got {metric})")
    world = _LPS @ lps @ _LPS  # LPS <-> RAS flips are their own inverses
    warped = resample(moving_fg, moving.affine, world, fixed.shape, fixed.affine, order=0)
    dice = 2 * (warped & fixed_fg).sum() / max(int(warped.sum() + fixed_fg.sum()), 1)
    if dice < MIN_OVERLAP_DICE:
        raise RegistrationError(
            f"{name}: registration to the model's template failed (its foreground overlaps "
            f"the template's with Dice {dice:.2f} < {MIN_OVERLAP_DICE}); check that the scan "
            "is a brain (and its brain mask), or score it with --space native"
        )
    return world


def resample(
    data: np.ndarray,
    source_affine: np.ndarray,
    target_to_source: np.ndarray,
    shape: tuple[int, ...],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """``data`` (on the grid ``source_affine``) sampled on the grid (``shape``,
    ``target_affine``), where ``target_to_source`` takes target world points to source
    world points. ``order`` 1 is trilinear, 0 nearest (bool masks stay bool)."""
    voxels = np.linalg.inv(source_affine) @ target_to_source @ target_affine
    values = np.asarray(data)
    is_mask = values.dtype == bool
    out = ndimage.affine_transform(
        values.astype(np.float32), voxels[:3, :3], voxels[:3, 3], output_shape=tuple(shape),
        order=order, mode="constant", cval=cval,
    )  # fmt: skip
    return out > 0.5 if is_mask else out
