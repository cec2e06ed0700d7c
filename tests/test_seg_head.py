"""The segmentation head of intima-media (``intima-media-seg`` with ``monai-unet``) and NIfTI inputs: the
mask -> boundary -> um metric by hand, its per-image summary through predictions.parquet, the MONAI loss with
unannotated columns, NIfTI images/masks (2-D and 3-D volumes sliced along the last axis) written here."""
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.intima import mask_loss
from tunedepth.data.loaders import load_units
from tunedepth.data.loaders.files import read_nifti
from tunedepth.data.units import IGNORE
from tunedepth.errors import ConfigError
from tunedepth.metrics import mask_boundaries, mask_interface_batched, mask_interface_metrics
from tunedepth.models import get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.run_files import prediction_rows, read_predictions, write_parquet
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

APP = get_app("intima-media-seg")


def _onehot(mask: np.ndarray) -> np.ndarray:
    """(N, H, W) class ids -> (N, 3, H, W) probabilities, softened so that logs are finite."""
    p = np.eye(3)[mask].transpose(0, 3, 1, 2) * 0.98 + 0.01
    return p / p.sum(axis=1, keepdims=True)


def _column(h, first, last):
    col = np.full(h, 2)
    col[:first] = 0
    col[first:last + 1] = 1
    return col


def test_mask_to_boundary_to_um_by_hand():
    # one image, 8 rows x 2 columns, 50 um/pixel; truth LI/MA rows 2.0/4.0 and 3.4/5.6
    truth = np.stack([_column(8, 2, 4), _column(8, 3, 6)], axis=1)[None]  # rows round(LI)..round(MA) are class 1
    pred = np.stack([_column(8, 2, 4), _column(8, 4, 6)], axis=1)[None]  # column 1: LI one row low
    meta = {"li_true": np.array([[2.0, 3.4]]), "ma_true": np.array([[4.0, 5.6]]), "spacing_um": np.array([50.0]),
            "row_scale": np.array([1.0]), "group": np.array([0])}
    r1, r2 = mask_boundaries(_onehot(pred))
    assert r1.tolist() == [[2, 4]] and r2.tolist() == [[5, 7]]
    m = mask_interface_metrics(truth, _onehot(pred), meta)
    # LI: |2-2|, |4-3.4| -> (0 + 0.6) / 2 x 50 = 15 um; MA: |4-4|, |6-5.6| -> 10 um; mean 12.5 um
    assert m["li_mae_um"] == pytest.approx(15.0) and m["ma_mae_um"] == pytest.approx(10.0)
    assert m["mae_um"] == pytest.approx(12.5)
    assert m["imt_mae_um"] == pytest.approx((0 + abs(2 - 2.2)) / 2 * 50)
    assert m["dice"] == pytest.approx(2 * 6 / (6 + 7))  # predicted 3 + 3 pixels, true 3 + 4, overlap 6
    # a stray intima-media pixel far from the wall does not move the boundary; a 2x row scale maps rows back
    noisy = pred.copy()
    noisy[0, 7, 0] = 1
    assert mask_boundaries(_onehot(noisy))[0].tolist() == [[2, 4]]
    scaled = mask_interface_metrics(truth, _onehot(pred), {**meta, "row_scale": np.array([2.0])})
    # rows 2..4 at half resolution cover original rows 4..9: LI 4, MA 2 x 5 - 1 = 9
    assert scaled["li_mae_um"] == pytest.approx((abs(4 - 2.0) + abs(8 - 3.4)) / 2 * 50)
    assert scaled["ma_mae_um"] == pytest.approx((abs(9 - 4.0) + abs(13 - 5.6)) / 2 * 50)


def test_unannotated_columns_count_for_neither_metric_nor_loss():
    truth = np.stack([_column(8, 2, 4), np.full(8, IGNORE)], axis=1)[None]
    pred = np.stack([_column(8, 2, 4), _column(8, 0, 0)], axis=1)[None]
    meta = {"li_true": np.array([[2.0, np.nan]]), "ma_true": np.array([[4.0, np.nan]]),
            "spacing_um": np.array([50.0]), "row_scale": np.array([1.0])}
    m = mask_interface_metrics(truth, _onehot(pred), meta)
    assert m["mae_um"] == 0.0 and m["dice"] == pytest.approx(1.0)
    logits = torch.randn(1, 3, 8, 2, requires_grad=True)
    target = torch.as_tensor(truth)
    loss = mask_loss(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[..., 1].abs().max() == 0  # the ignored column gets no gradient
    full = torch.as_tensor(np.stack([_column(8, 2, 4)] * 2, axis=1)[None])
    from monai.losses import DiceCELoss
    assert mask_loss(logits, full).item() == pytest.approx(DiceCELoss(to_onehot_y=True, softmax=True)(
        logits, full[:, None]).item())


def test_summary_through_predictions_parquet_scores_the_same(tmp_path):
    data = build_split_data(APP, "", 96, seed=0, n=12)
    masks = data.targets("test").numpy()
    rng = np.random.default_rng(0)
    probs = 0.7 * _onehot(np.roll(masks, 1, axis=1) % IGNORE) + 0.3 * rng.dirichlet(np.ones(3), masks.shape).transpose(
        0, 3, 1, 2
    )
    meta = {k: v.numpy() for k, v in data.test_meta.items()}
    direct = APP.all_metrics(masks, probs, meta)
    summary_probs, summary_meta = APP.summarize(masks, probs, meta)
    assert summary_probs.shape == (len(masks), 3)
    info = dict(app=APP.name, backbone="monai-unet", source="scratch", budget=1.0, depth="scratch", depth_index=11,
                trial_id="t", lr=1e-3, seed=0, selected_epoch=1, evaluated_epoch=1)
    write_parquet(prediction_rows(info, data.test_y.numpy(), summary_probs, summary_meta), tmp_path / "p.parquet")
    cell = read_predictions(tmp_path / "p.parquet")[(1.0, "scratch", 0)]
    again = APP.all_metrics(cell["labels"], cell["probs"], cell["meta"])
    assert again == pytest.approx(direct)
    batched = mask_interface_batched(cell["labels"], cell["probs"], cell["meta"], np.ones((1, len(masks))))
    assert batched[0] == pytest.approx(direct["mae_um"])


def test_fractal_is_refused_for_a_mask_backbone_in_one_line():
    with pytest.raises(ConfigError) as e:
        get_source_weights("fractal", get_backbone("monai-unet"))
    assert "\n" not in str(e.value) and "file:PATH" in str(e.value)


# ------------------------------------------------------------------------------------------ NIfTI

def _wall(h, w, top, rng):
    img = rng.random((h, w)) * 60
    img[top:top + 7] += 120
    mask = np.zeros((h, w), np.uint8)
    mask[top:top + 7, 3:w - 3] = 1
    return img, mask


def _save_nifti(arr_rows_cols, path):
    """Save an array indexed [row, col] (or [slice, row, col]) as NIfTI axes (i, j[, k]) = (col, row[, slice])."""
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr_rows_cols.T), np.eye(4)), str(path))


def test_read_nifti_2d_and_3d_orientation(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)  # 3 rows, 4 columns
    _save_nifti(a, tmp_path / "a.nii.gz")
    assert np.array_equal(read_nifti(tmp_path / "a.nii.gz"), a)
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # 2 slices
    _save_nifti(v, tmp_path / "v.nii")
    assert np.array_equal(read_nifti(tmp_path / "v.nii"), v)


def test_nifti_folders_2d(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(9):
        img, mask = _wall(40, 48, 14 + i % 4, rng)
        _save_nifti(img.astype(np.int16), tmp_path / "images" / f"scan{i}.nii.gz")
        _save_nifti(mask, tmp_path / "masks" / f"scan{i}_mask.nii.gz")
    (tmp_path / "spacing.csv").write_text("image,spacing_um\n*,60\n")
    raw = load_units(tmp_path, APP)
    assert len(raw) == 9 and raw.names[0] == "images/scan0.nii.gz"
    assert raw.boundaries[0][0, 10] == 14 and raw.boundaries[0][1, 10] == 20 and np.isnan(raw.boundaries[0][0, 0])
    assert float(raw.images[0].min()) == 0.0 and float(raw.images[0].max()) == 1.0


def _volumes(tmp_path, n=4, slices=4):
    """``n`` volumes of ``slices`` slices along the last NIfTI axis; the last slice of each is not annotated."""
    rng = np.random.default_rng(1)
    items = []
    for v in range(n):
        imgs, masks = zip(*[_wall(40, 48, 12 + (v + k) % 5, rng) for k in range(slices)])
        vol, mvol = np.stack(imgs), np.stack(masks)
        mvol[-1] = 0
        _save_nifti(vol.astype(np.float32), tmp_path / f"vol{v}.nii.gz")
        _save_nifti(mvol, tmp_path / f"vol{v}_seg.nii.gz")
        items.append({"image": f"vol{v}.nii.gz", "label": f"vol{v}_seg.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps({"spacing_um": 65.0, "training": items}))
    return tmp_path / "dataset.json"


def test_nifti_volumes_in_a_datalist_are_sliced_with_the_volume_as_group(tmp_path):
    path = _volumes(tmp_path)
    raw = load_units(path, APP)
    assert len(raw) == 4 * 3  # the unannotated last slice of each volume is skipped
    assert raw.names[:3] == ["vol0.nii.gz#k0", "vol0.nii.gz#k1", "vol0.nii.gz#k2"]
    assert len(set(raw.groups.tolist())) == 4 and raw.groups[0] == raw.groups[2]
    data = build_split_data(APP, str(path), 96, seed=0)
    assert data.units.groupby("source_group")["split"].nunique().max() == 1  # a volume never straddles splits
    assert data.train_mask.shape[1:] == (96, 96) and (data.train_mask == IGNORE).any()  # unannotated columns
    run = TrialRun(TrialConfig(app=APP.name, backbone="monai-unet", depth="scratch", epochs=1, batch_size=8), data, {})
    m = run.step()
    assert np.isfinite(m["val_metric"]) and np.isfinite(m["train_loss"])


def test_missing_and_corrupt_nifti_are_one_line_errors(tmp_path):
    path = _volumes(tmp_path, n=3)
    (tmp_path / "vol1.nii.gz").write_bytes(b"not a nifti file at all")
    with pytest.raises(ConfigError) as e:
        load_units(path, APP)
    assert "\n" not in str(e.value) and "vol1.nii.gz" in str(e.value) and "replace the file" in str(e.value)
    (tmp_path / "vol2_seg.nii.gz").unlink()
    (tmp_path / "vol1.nii.gz").unlink()
    with pytest.raises(ConfigError) as e:
        load_units(path, APP)
    assert "\n" not in str(e.value) and "not found" in str(e.value)
