"""The package layers: errors -> data -> loaders -> apps, each importable alone in a fresh interpreter, and
no lower layer pulling in a higher one (no import loop hidden by late imports)."""
import subprocess
import sys

import pytest

# (module, project packages it must not load)
LAYERS = [
    ("tunedepth.errors", ("tunedepth.settings", "tunedepth.data", "tunedepth.data.loaders", "tunedepth.apps")),
    ("tunedepth.metrics", ("tunedepth.data", "tunedepth.data.loaders", "tunedepth.apps", "tunedepth.models")),
    ("tunedepth.data", ("tunedepth.data.loaders", "tunedepth.apps", "tunedepth.metrics", "tunedepth.models")),
    ("tunedepth.data.loaders", ("tunedepth.apps", "tunedepth.models")),
    ("tunedepth.apps", ("tunedepth.models", "ray")),
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
