"""Ray's private internals are used in one module, behind one version check that fails in one line."""
import os
import re
import subprocess
import sys
from pathlib import Path

import ray

from tunedepth.hpo import ray_compat

ROOT = Path(__file__).resolve().parents[1]


def test_the_supported_ray_is_the_pinned_one_and_is_installed_here():
    pin = re.search(r'"ray\[[^\]]*\]==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert ray_compat.SUPPORTED_RAY == pin == ray.__version__
    assert ray_compat.check_ray() == pin


def test_another_ray_fails_in_one_line_naming_the_supported_version(tmp_path):
    """A Ray of another version on the path (a package named ray, version 9.9.9): the schedulers refuse to build."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text('__version__ = "9.9.9"\n')
    code = ("from tunedepth.hpo.ray_compat import check_ray\n"
            "from tunedepth.errors import ConfigError\n"
            "try:\n    check_ray()\nexcept ConfigError as e:\n    print(e); raise SystemExit(2)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout.strip()
    assert len(out.splitlines()) == 1 and "ray==2.60.0" in out and "9.9.9" in out


def test_no_other_module_touches_ray_or_optuna_private_attributes():
    private = re.compile(r"\._(trial_info|num_stopped|brackets|set_trial_status|raylet)\b|ray\.core\.generated"
                         r"|ray\._private|\._(ot_study|ot_trials|completed_trials|study_id|trial_id|storage)\b")
    files = [p for p in sorted((ROOT / "tunedepth").rglob("*.py")) if p.name != "ray_compat.py"]
    assert len(files) > 50  # the package is where this looks
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if private.search(line)]
    assert hits == []
