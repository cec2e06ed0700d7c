"""The Ray-free core: a trial steps, checkpoints and resumes exactly; bad input fails clearly."""
import pytest
import torch

from tunedepth.apps import get_app
from tunedepth.errors import ConfigError
from tunedepth.models import get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun


@pytest.fixture(scope="module")
def data():
    return get_app("colonoscopy-frames").build_data(240, 64, 0)


@pytest.fixture(scope="module")
def weights():
    state = {k: v.clone() for k, v in get_backbone("tiny-alexnet").build(16).state_dict().items()}
    return {"fractal": state}


def _cfg(**kw):
    base = dict(
        backbone="tiny-alexnet", source="fractal", depth="fc7-fc8", budget=0.5, lr=1e-3, epochs=3, batch_size=16
    )
    return TrialConfig.from_dict({**base, **kw})


def test_resume_from_state_continues_exactly(data, weights):
    straight = TrialRun(_cfg(), data, weights)
    full = [straight.step() for _ in range(3)]

    first = TrialRun(_cfg(), data, weights)
    first.step()
    state = first.state_dict()
    torch.manual_seed(12345)  # the resumed process starts with another global RNG state
    resumed = TrialRun(_cfg(), data, weights)
    resumed.load_state_dict(state)
    rest = [resumed.step() for _ in range(2)]
    for a, b in zip(full[1:], rest):
        assert a["epoch"] == b["epoch"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_metric"] == pytest.approx(b["val_metric"], rel=1e-6)


def test_frozen_layers_do_not_move(data, weights):
    run = TrialRun(_cfg(depth="fc8"), data, weights)
    conv1 = run.model.conv1[0].weight.detach().clone()
    fc8 = run.model.fc8.weight.detach().clone()
    metrics = run.step()
    assert torch.equal(conv1, run.model.conv1[0].weight)
    assert not torch.equal(fc8, run.model.fc8.weight)
    assert metrics["n_train"] == len(data.budget_indices(0.5))
    assert 0.0 <= metrics["val_metric"] <= 1.0


def test_pretrained_weights_are_loaded_below_the_head(data, weights):
    run = TrialRun(_cfg(depth="fc8"), data, weights)
    assert torch.equal(run.model.conv3[0].weight, weights["fractal"]["conv3.0.weight"])
    scratch = TrialRun(_cfg(depth="scratch"), data, {})
    assert not torch.equal(scratch.model.conv3[0].weight, weights["fractal"]["conv3.0.weight"])


def test_nan_loss_ends_the_trial_as_diverged_with_the_reason(data, weights):
    run = TrialRun(_cfg(depth="scratch", lr=1e6), data, {})
    for _ in range(3):
        m = run.step()
        if run.finished:
            break
    assert m["diverged"] and run.finished and "lower the learning rate" in run.diverged


def test_missing_weights_and_wrong_sizes_are_clear_errors(data, weights):
    with pytest.raises(ConfigError, match="no pretrained weights for source 'fractal'"):
        TrialRun(_cfg(), data, {})
    bad = {"fractal": {k: v[..., :1] if v.ndim > 1 else v for k, v in weights["fractal"].items()}}
    with pytest.raises(ConfigError, match="do not fit backbone 'tiny-alexnet'.*wrong shape"):
        TrialRun(_cfg(), data, bad)


def test_checkpoint_of_another_config_is_refused(data, weights):
    state = TrialRun(_cfg(), data, weights).state_dict()
    with pytest.raises(ConfigError, match="different config"):
        TrialRun(_cfg(lr=2e-3), data, weights).load_state_dict(state)


def test_fractal_source_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path))
    spec = get_backbone("tiny-alexnet")
    logs = []
    a = get_source_weights("fractal", spec, smoke=True, log=logs.append)
    assert any("pretraining once" in m for m in logs)
    files = list((tmp_path / "sources").glob("*.pt"))
    assert len(files) == 1
    logs.clear()
    b = get_source_weights("fractal", spec, smoke=True, log=logs.append)
    assert any("cached" in m for m in logs) and not any("pretraining once" in m for m in logs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    files[0].write_bytes(b"not a checkpoint")  # a corrupt cache is recomputed, identically
    c = get_source_weights("fractal", spec, smoke=True, log=logs.append)
    assert all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ConfigError, match="unknown source 'imagenet-22k'"):
        get_source_weights("imagenet-22k", spec)


def test_inputs_are_normalised_for_the_source():
    """ImageNet weights see ImageNet's per-channel statistics; other sources the fixed 0.5 / 0.25."""
    from tunedepth.models.engine import IMAGENET_NORM, to_input

    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(to_input(x), torch.full((1, 3, 2, 2), 2.0))
    out = to_input(x, IMAGENET_NORM)
    for c, (m, s) in enumerate(zip(*IMAGENET_NORM)):
        assert torch.allclose(out[0, c], torch.full((2, 2), (1 - m) / s))


def test_checkpoint_carries_the_best_validation_epochs_weights(data, weights):
    run = TrialRun(_cfg(epochs=4, lr=3e-3), data, weights)
    history, snapshots = [], {}
    for _ in range(4):
        m = run.step()
        history.append(m["val_metric"])
        snapshots[m["epoch"]] = {k: v.clone() for k, v in run.model.state_dict().items()}
    best_epoch = 1 + max(range(4), key=lambda i: (history[i], -i))  # earliest best
    assert m["best_epoch"] == best_epoch and m["best_val_metric"] == pytest.approx(max(history))
    restored = TrialRun(_cfg(epochs=4, lr=3e-3), data, weights)
    restored.load_state_dict(run.state_dict())
    assert restored.load_best_model() == best_epoch
    assert all(torch.equal(restored.model.state_dict()[k], snapshots[best_epoch][k]) for k in snapshots[best_epoch])


def test_checkpoints_hold_only_what_the_trial_trains(data, weights):
    run = TrialRun(_cfg(depth="fc8", epochs=1), data, weights)
    run.step()
    state = run.state_dict()
    assert set(state["model"]) == {"fc8.weight", "fc8.bias"} == set(state["best"]["model"])
    full = TrialRun(_cfg(depth="scratch", epochs=1), data, weights)
    assert set(full.state_dict()["model"]) == set(full.model.state_dict())
    # the frozen part comes from the source's weights: a restored run equals the original
    restored = TrialRun(_cfg(depth="fc8", epochs=1), data, weights)
    restored.load_state_dict(state)
    for k, v in run.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="does not match"):
        restored.load_trained_state({"fc7.1.weight": torch.zeros(1)})


def test_every_budget_gets_the_same_optimizer_steps_per_epoch_equivalent(data, weights):
    runs = {b: TrialRun(_cfg(budget=b, epochs=2), data, weights) for b in (0.25, 1.0)}
    full_pass = -(-len(data.train_y) // 16)  # one pass over the full training split at batch 16
    for b, run in runs.items():
        m = run.step()
        assert run.steps_per_epoch == full_pass and m["step"] == full_pass
        assert run.lr_scheduler.last_epoch == full_pass  # optimizer steps actually taken
    assert runs[0.25].idx.numel() < runs[1.0].idx.numel() / 3  # a quarter of the data, walked ~4 times
    fixed = TrialRun(_cfg(budget=0.25, epoch_steps=5), data, weights)
    assert fixed.step()["step"] == 5 and fixed.lr_scheduler.last_epoch == 5


def test_patience_ends_a_trial_that_stops_improving(data, weights):
    """Patience counts optimizer steps: 5 steps at 3 steps per validation end the trial 2 validations after its
    best (a plateau, not the cap); it reports its noise and chance level."""
    run = TrialRun(_cfg(lr=1e-12, epochs=6, epoch_steps=3, patience_steps=5), data, weights)  # lr ~0: no gain
    history = []
    while not run.finished:
        history.append(run.step())
    assert len(history) == 3 and history[-1]["early_stopped"] and not history[-2]["early_stopped"]
    assert history[-1]["best_epoch"] == 1 and not history[-1]["capped"]
    assert all(h["val_se"] > 0 and 0.0 <= h["val_chance"] <= 1.0 for h in history)


def test_a_trial_without_a_plateau_is_capped(data, weights):
    run = TrialRun(_cfg(epochs=2, patience_steps=0), data, weights)
    history = [run.step(), run.step()]
    assert run.finished and history[-1]["capped"] and not history[0]["capped"]


def test_scratch_warms_up_linearly_before_its_schedule(data, weights):
    run = TrialRun(_cfg(depth="scratch", epochs=4, epoch_steps=4, scratch_warmup_epochs=1.0, schedule="constant"),
                   data, weights)
    factors = [run.lr_scheduler.lr_lambdas[0](k) for k in range(6)]
    assert factors[0] == 0.01 and factors[2] == 0.01 + 0.99 * 2 / 4 and factors[4:] == [1.0, 1.0]


def test_fine_tuning_applies_the_normalisation_saved_with_the_weights(data, tmp_path):
    """A source's input_mean/input_std (fractal `standardize`, a checkpoint's meta) is what the trial applies,
    and the cached features differ with it; scratch and bare state_dicts use the engine's default."""
    state = get_backbone("tiny-alexnet").build(16).state_dict()
    torch.save({"state_dict": state, "meta": {"input_mean": 0.3, "input_std": 0.2}}, tmp_path / "w.pt")
    torch.save(state, tmp_path / "bare.pt")
    runs = {}
    for name in ("w.pt", "bare.pt"):
        source = f"file:{tmp_path / name}"
        weights = {source: get_source_weights(source, get_backbone("tiny-alexnet"), log=lambda s: None)}
        runs[name] = TrialRun(_cfg(source=source, depth="fc8", epochs=1), data, weights)
    assert runs["w.pt"].norm == (0.3, 0.2) and runs["bare.pt"].norm == (0.5, 0.25)
    assert TrialRun(_cfg(depth="scratch"), data, {}).norm == (0.5, 0.25)
    f = {k: r._features("val", 1) for k, r in runs.items()}
    assert not torch.allclose(f["w.pt"], f["bare.pt"])  # same prefix weights, different input normalisation


def test_a_diverging_trial_ends_as_diverged_not_as_a_crash(data, weights):
    run = TrialRun(_cfg(lr=1e6, epochs=4), data, weights)  # an absurd lr: the loss overflows
    history = []
    while not run.finished:
        history.append(run.step())
    assert history[-1]["diverged"] and len(history) <= 4
    assert all(not h["diverged"] for h in history[:-1])
