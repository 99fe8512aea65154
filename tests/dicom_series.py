"""Write small, valid DICOM image series from a voxel array and its RAS+ affine (pydicom).

Each slice k of ``data[:, :, k]`` becomes one file: its pixel rows run down array axis 1,
its columns along axis 0 (so Columns = X, Rows = Y), its position is the affine applied to
voxel (0, 0, k), turned from RAS into DICOM's LPS. The tags the reader relies on are all
set: SOP class and UIDs, ImagePositionPatient, ImageOrientationPatient, PixelSpacing (row
spacing, column spacing), Rows/Columns, Bits*, RescaleSlope/Intercept and PixelData.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_series(
    folder: Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    description: str = "T1",
    modality: str = "MR",
    slope: float = 1.0,
    intercept: float = 0.0,
    order: np.ndarray | None = None,
    uid: str | None = None,
    prefix: str = "IM",
) -> list[Path]:
    """One file per slice in ``folder``; ``order`` permutes the file names (shuffled)."""
    folder.mkdir(parents=True, exist_ok=True)
    lps = RAS_TO_LPS @ affine
    column_spacing, row_spacing = np.linalg.norm(lps[:3, :2], axis=0)
    orientation = [*(lps[:3, 0] / column_spacing), *(lps[:3, 1] / row_spacing)]
    stored = np.round((data - intercept) / slope).astype(np.int16)
    study, series, frame = generate_uid(), uid or generate_uid(), generate_uid()
    n = data.shape[2]
    names = np.arange(n) if order is None else np.asarray(order)
    paths = []
    for k in range(n):
        ds = _image(modality, study, series, frame)
        ds.SeriesDescription = description
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in (lps @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = [f"{row_spacing:.6f}", f"{column_spacing:.6f}"]
        ds.SliceThickness = "9.5"  # deliberately not the spacing: positions must win
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"{prefix}{names[k]:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _image(modality: str, study: str, series: str, frame: str) -> Dataset:
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality, ds.PatientName, ds.PatientID = modality, "Test^Phantom", "0"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same grid with its axes flipped/permuted to the closest RAS+ order."""
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), affine))
    return np.asarray(img.dataobj), img.affine
