"""The package layers: errors -> data -> loaders -> apps -> models, and analysis, each importable alone in a fresh
interpreter, and no lower layer pulling in a higher one (no import loop hidden by late imports); the source's
import graph (tools/import_graph.py, late imports counted) has no cycle between sub-packages or modules; the
backbone registry is complete when it is the only module a caller imports."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

# (module, project packages it must not load)
LAYERS = [
    ("tunedepth.errors", ("tunedepth.settings", "tunedepth.data", "tunedepth.data.loaders", "tunedepth.apps")),
    ("tunedepth.metrics", ("tunedepth.data", "tunedepth.data.loaders", "tunedepth.apps", "tunedepth.models")),
    ("tunedepth.data", ("tunedepth.data.loaders", "tunedepth.apps", "tunedepth.metrics", "tunedepth.models")),
    ("tunedepth.data.loaders", ("tunedepth.apps", "tunedepth.models")),
    ("tunedepth.apps", ("tunedepth.models", "ray")),
    # the catalogue of backbones: no Ray, no training loop; timm and torchvision load only when a model is built
    ("tunedepth.models", ("tunedepth.training", "tunedepth.hpo", "tunedepth.analysis", "tunedepth.cli", "ray",
                          "timm", "torchvision")),
    ("tunedepth.analysis", ("ray", "tunedepth.training", "tunedepth.hpo", "tunedepth.models.engine")),
]


@pytest.mark.parametrize("module,forbidden", LAYERS, ids=[m for m, _ in LAYERS])
def test_layer_imports_alone_and_not_above(module, forbidden):
    code = (f"import sys, {module}\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[:2] and any(m == f or m.startswith(f + '.') "
            f"for f in {forbidden!r}))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"{module} loads {out.stdout.strip()}"


def test_import_graph_has_no_cycle():
    tool = Path(__file__).resolve().parents[1] / "tools" / "import_graph.py"
    out = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^cycles between (sub-packages|modules): (\d+)$", out.stdout, re.M))
    assert set(counts) == {"sub-packages", "modules"}, out.stdout[-2000:]  # the tool still prints both lines
    assert counts == {"sub-packages": "0", "modules": "0"}, out.stdout[out.stdout.index("cycles between"):]


def _registry_seen(first_import: str) -> dict:
    code = (f"import json, sys\n{first_import}\n"
            "from tunedepth.models.registry import BACKBONES, PREFIXES, get_backbone\n"
            "print(json.dumps({'names': list(BACKBONES), 'prefixes': sorted(PREFIXES),\n"
            "                  'lite0': get_backbone('efficientnet-lite0').group_names,\n"
            "                  'timm_loaded': 'timm' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_the_registry_alone_finds_every_backbone():
    """A caller importing only the leaf registry sees the same backbones, in the same order, and the same name
    prefixes as one importing the catalogue ``tunedepth.models`` first; building the registry loads no timm."""
    alone, catalogue = _registry_seen("pass"), _registry_seen("import tunedepth.models")
    assert alone == catalogue
    assert {"tiny-alexnet", "efficientnet-lite0", "unet-efficientnet-lite0", "resnet18"} <= set(alone["names"])
    assert alone["prefixes"] == ["timm:", "unet-timm:"]
    assert alone["lite0"][0] == "stem" and alone["lite0"][-1] == "head"
    assert not alone["timm_loaded"]
