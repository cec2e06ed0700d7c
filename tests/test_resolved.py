"""One resolved trial (``tunedepth.training.resolved``): a config resolves once to the network ``TrialRun`` trains,
and a trial's checkpoint file rebuilds that same network (size, seed, source), without Ray or the search package."""
import json
import subprocess
import sys

import pytest
import torch

from tunedepth.apps import get_app
from tunedepth.errors import ConfigError
from tunedepth.models import get_backbone
from tunedepth.models.engine import to_input
from tunedepth.settings import TrialConfig
from tunedepth.training.resolved import CHECKPOINT_FILE, load_trained, resolve_trial
from tunedepth.training.trial import TrialRun

SIZE = 32  # resnet18's own is 224: a run with --input-size 32


@pytest.fixture(scope="module")
def data():
    return get_app("colonoscopy-frames").build_data(120, SIZE, 0)


def _cfg(**kw) -> TrialConfig:
    base = dict(app="colonoscopy-frames", backbone="resnet18", source="scratch", input_size=SIZE, depth="fc",
                budget=1.0, lr=1e-2, epochs=2, batch_size=16, seed=3)
    return TrialConfig.from_dict({**base, **kw})


def test_a_config_resolves_to_the_sized_backbone_its_depth_and_effective_source():
    assert get_backbone("resnet18").input_size != SIZE
    trial = resolve_trial(_cfg(), {})
    assert (trial.spec.input_size, trial.input_size, trial.depth_index, trial.tuned_groups) == (SIZE, SIZE, 1, ("fc",))
    assert trial.source == "scratch" and trial.source_weights is None
    deep = resolve_trial(_cfg(depth="layer4-fc", source="fractal"), {"fractal": {"x": torch.zeros(1)}})
    assert (deep.depth_index, deep.tuned_groups, deep.source) == (2, ("layer4", "fc"), "fractal")
    scratch = resolve_trial(_cfg(depth="scratch", source="fractal"), {})  # depth scratch ignores the source
    assert scratch.source == "scratch" and scratch.depth_index == len(scratch.spec.groups) + 1
    generic = resolve_trial(_cfg(app="classification", resize="pad", metric="balanced-accuracy"), {})
    assert generic.app.make_samples.keywords["resize"] == "pad" and generic.app.metric == "balanced-accuracy"
    assert resolve_trial(_cfg(app="classification"), {}).app.make_samples.keywords["resize"] == "resize"
    with pytest.raises(ConfigError, match="no pretrained weights for source 'fractal'"):
        resolve_trial(_cfg(source="fractal"), {})
    with pytest.raises(ConfigError, match="cannot take 96px"):
        resolve_trial(_cfg(backbone="tiny-alexnet", input_size=96, depth="fc8"), {})


def test_a_trials_checkpoint_file_rebuilds_the_network_it_trained(data, tmp_path):
    """At the run's input size, with the trial's own random frozen layers (source scratch at depth fc: the
    checkpoint holds fc alone), its best epoch's weights give exactly the logits TrialRun predicts."""
    run = TrialRun(_cfg(), data, {})
    assert run.resolved.spec.input_size == SIZE and run.spec is run.resolved.spec
    for _ in range(2):
        run.step()
    path = tmp_path / CHECKPOINT_FILE
    torch.save(run.state_dict(), path)
    assert {k.split(".")[0] for k in run.state_dict()["model"]} == {"fc"}
    best_epoch = run.load_best_model()
    with torch.no_grad():
        expected = run.predict("test")

    rng = torch.get_rng_state()
    trained = load_trained(path)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left as it was
    assert (trained.epoch, trained.num_classes, trained.trial.spec.input_size) == (best_epoch, 2, SIZE)
    assert not trained.model.training
    with torch.no_grad():
        got = trained.model(to_input(data.test_x, trained.trial.norm))
    torch.testing.assert_close(got, expected.float(), atol=1e-4, rtol=1e-4)


def test_the_training_core_imports_neither_ray_nor_the_search():
    code = ("import sys, json, tunedepth.training.resolved, tunedepth.training.trial; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'ray' or m.startswith(('tunedepth.hpo', 'tunedepth.cli')))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
