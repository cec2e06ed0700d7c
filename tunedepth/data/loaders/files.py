"""Reading one image, mask or volume file, whatever its mode, into a float tensor; clear errors otherwise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunedepth.errors import ConfigError

try:  # MONAI raises its own OptionalImportError when a reader package is missing
    from monai.utils import OptionalImportError
except ImportError:  # pragma: no cover
    OptionalImportError = ImportError  # type: ignore[misc,assignment]

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm", ".pbm"}
VOLUME_EXTS = (".npy", ".npz", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")
NIFTI_EXTS = (".nii", ".nii.gz")
MAX_LISTED = 8  # unreadable files named in one error line (the count covers all)


def read_table(csv_path: Path, header: str, row: str, dtype: dict | None = None):
    """A CSV as a DataFrame; an unparsable file is a one-line ConfigError naming the expected ``header``."""
    import pandas as pd

    try:
        return pd.read_csv(csv_path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse {csv_path} as CSV ({str(e).splitlines()[0]}); "
                          f"write a header line {header} and one row per {row}") from None


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


def _missing(path: Path, where: str) -> ConfigError:
    return ConfigError(f"image file {path} not found{where}; fix the path or remove the entry")


def _unreadable(path: Path, e: Exception, where: str) -> ConfigError:
    reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
    return ConfigError(f"cannot read {path}{where} ({reason}); replace the file or remove the entry")


def _pil_array(path: Path, where: str):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise _missing(path, where)
    try:
        with Image.open(path) as im:
            im.load()
            return im.mode, im.copy()
    except Image.DecompressionBombError:
        raise ConfigError(f"{path}{where}: the image is larger than PIL's safety limit "
                          f"({Image.MAX_IMAGE_PIXELS} pixels); downscale it, or remove it from the data") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise _unreadable(path, e, where) from None


def read_image(path: str | Path, grey: bool = False, where: str = "") -> torch.Tensor:
    """An image file as float (C, H, W) in [0, 1], C = 3 (colour) or 1 (grey, or ``grey=True``).

    8-bit modes are divided by 255; 16-bit, 32-bit and float images are scaled from their own min..max.
    Palette images become RGB, alpha is dropped, CMYK/YCbCr/HSV are converted to RGB.
    """
    path = Path(path)
    mode, im = _pil_array(path, where)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        x = torch.as_tensor(a, dtype=torch.float32)[None]
    else:
        if mode in ("1", "L", "LA"):
            im = im.convert("L")
        elif mode != "RGB":
            im = im.convert("RGB")
        a = np.asarray(im, dtype=np.float32) / 255.0
        x = torch.as_tensor(a)[None] if a.ndim == 2 else torch.as_tensor(a).permute(2, 0, 1)
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ConfigError(f"image {path}{where} is {tuple(x.shape[-2:])} pixels; it needs at least 2x2")
    if grey and x.shape[0] == 3:
        x = x.mean(dim=0, keepdim=True)
    return x.contiguous()


def read_images(paths: list[Path], names: list[str], where=lambda i: "", what: str = "") -> list[torch.Tensor]:
    """Every image of ``paths`` (``read_image``); the unreadable ones are one ConfigError listing them, with a
    count, after all were tried (one bad file: its own message)."""
    images, bad = [], []
    for i, p in enumerate(paths):
        try:
            images.append(read_image(p, where=where(i)))
        except ConfigError as e:
            bad.append((names[i], str(e)))
    if len(bad) == 1:
        raise ConfigError(bad[0][1])
    if bad:
        listed = ", ".join(n for n, _ in bad[:MAX_LISTED]) + (", ..." if len(bad) > MAX_LISTED else "")
        raise ConfigError(f"{len(bad)} of {len(paths)} images{what} cannot be read: {listed}; the first: "
                          f"{bad[0][1]}")
    return images


def read_mask(path: str | Path, where: str = "") -> np.ndarray:
    """A label mask file as an integer array (H, W); colour masks count any non-black pixel as foreground."""
    path = Path(path)
    if path.suffix.lower() in (".npy", ".npz") or path.name.lower().endswith(VOLUME_EXTS[2:]):
        a = read_volume(path, where).numpy()
        a = np.squeeze(a)
        if a.ndim != 2:
            raise ConfigError(f"mask {path}{where} has shape {a.shape}; give a 2-D mask")
        return np.rint(a).astype(np.int64)
    mode, im = _pil_array(path, where)
    a = np.asarray(im)
    if a.ndim == 3:
        a = (a[..., :3] > 0).any(axis=-1).astype(np.int64)
    return a.astype(np.int64)


def read_volume(path: str | Path, where: str = "") -> torch.Tensor:
    """A 3-D array file as float32: ``.npy``/``.npz`` indexed [z, y, x]; NIfTI/MHA/NRRD through MONAI's
    ``LoadImage`` (axes i, j, k = x, y, z, returned as [k, j, i])."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, where)
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return torch.as_tensor(np.load(path, allow_pickle=False)).float()
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if not keys:
                    raise ValueError("empty .npz")
                return torch.as_tensor(z[keys[0]]).float()
    except (OSError, ValueError) as e:
        raise _unreadable(path, e, where) from None
    from monai.transforms import LoadImage

    try:
        arr = LoadImage(image_only=True)(str(path))
    except (ImportError, RuntimeError, OptionalImportError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        if "nibabel" in msg.lower() or "itk" in msg.lower() or "reader" in msg.lower():
            raise ConfigError(f"cannot read {path}{where}: MONAI needs an image reader for it ({msg}); "
                              f"pip install nibabel (NIfTI) or itk, or save the volume as .npy [z, y, x]") from None
        raise _unreadable(path, e, where) from None
    a = torch.as_tensor(np.asarray(arr)).float()
    if a.ndim != 3:
        raise ConfigError(f"volume {path}{where} has shape {tuple(a.shape)}; give a single-channel 3-D volume")
    return a.permute(2, 1, 0).contiguous()


def is_nifti(path: Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(NIFTI_EXTS) and not name.startswith(".")


def read_nifti(path: str | Path, where: str = "") -> np.ndarray:
    """A NIfTI file (``.nii``/``.nii.gz``) as a float array indexed like an image: 2-D data (i, j) -> [j, i]
    (rows = j), 3-D data (i, j, k) -> [k, j, i] (slices along the last axis k); singleton axes dropped.

    Read with nibabel (the array as stored, no reorientation). A missing, truncated or non-NIfTI file, or
    one with more than three non-singleton axes, is a one-line ConfigError naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, where)
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is a dependency
        raise ConfigError(f"cannot read {path}{where}: NIfTI needs nibabel; pip install nibabel") from None
    try:
        a = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as e:  # nibabel raises ImageFileError, EOFError, OSError, zlib/gzip errors, ValueError...
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ConfigError(f"cannot read {path}{where} as NIfTI ({reason}); replace the file (write it with nibabel "
                          f"or another NIfTI writer) or remove the entry") from None
    a = a.reshape([d for d in a.shape if d != 1] or [1])
    if a.ndim not in (2, 3):
        raise ConfigError(f"NIfTI {path}{where} has shape {a.shape}; give a 2-D image or a 3-D volume "
                          "(one channel, slices along the last axis)")
    if not np.isfinite(a).all():
        raise ConfigError(f"NIfTI {path}{where} holds NaN or infinite values; fix or replace the file")
    return np.ascontiguousarray(a.T)  # (i, j) -> [j, i]; (i, j, k) -> [k, j, i]
