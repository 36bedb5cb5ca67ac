"""Writes image fixtures and their expected [0, 1] intensities with Pillow and pydicom,
independent of the TypeScript decoders under test. Usage: make_fixtures.py OUT_DIR"""
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = Path(sys.argv[1])
rng = np.random.default_rng(7)
expected = {}

gray8 = rng.integers(0, 256, (9, 13), dtype=np.uint8)
Image.fromarray(gray8).save(out / "gray8.png")
expected["gray8.png"] = (gray8 / 255.0).tolist()

gray16 = rng.integers(0, 65536, (7, 5), dtype=np.uint16)
Image.fromarray(gray16.astype(np.int32)).convert("I;16").save(out / "gray16.png")
expected["gray16.png"] = (np.asarray(Image.open(out / "gray16.png"), dtype=np.float64) / 65535.0).tolist()

rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
Image.fromarray(rgb).save(out / "rgb.png")
expected["rgb.png"] = ((rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0).tolist()

smooth = (np.add.outer(np.arange(32), np.arange(48)) * 2).astype(np.uint8)
Image.fromarray(smooth).save(out / "smooth.jpg", quality=95)
expected["smooth.jpg"] = (np.asarray(Image.open(out / "smooth.jpg").convert("L"), dtype=np.float64) / 255.0).tolist()


def write_dicom(name, pixels, photometric, signed, slope, intercept, window):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(out / name), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(out / name, write_like_original=False)
    ds = pydicom.dcmread(out / name)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if window:
        # PS3.3 C.11.2.1.2 linear window, written out here from the standard, mapped to [0, 1].
        c, w = window
        values = np.clip(((values - (c - 0.5)) / (w - 1) + 0.5), 0, 1)
    else:
        values = (values - values.min()) / (values.max() - values.min())
    if photometric == "MONOCHROME1":
        values = 1 - values
    expected[name] = values.tolist()


write_dicom("mono2.dcm", rng.integers(0, 4096, (10, 12)), "MONOCHROME2", False, 1.0, 0.0, None)
write_dicom("mono1_window.dcm", rng.integers(-2048, 2047, (8, 6)), "MONOCHROME1", True, 2.0, -100.0, (300.0, 2000.0))

(out / "expected.json").write_text(json.dumps(expected))
