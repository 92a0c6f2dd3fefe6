"""A wheel built from the repo carries templates, schemas, stock packs and static assets."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("quotaflow-*.whl")
    return found


def test_wheel_contains_templates_schemas_stock_pack_and_htmx(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "quotaflow/_data/templates/base.html" in names
    assert "quotaflow/_data/definitions/schema/form.schema.json" in names
    assert "quotaflow/_data/definitions/packs/b2b_manufacturer/pack.yaml" in names
    assert "quotaflow/_data/plugins/label_locales/__init__.py" in names
    assert "quotaflow/web/static/vendor/htmx.min.js" in names
    assert "quotaflow/migrations/versions/0001_initial.py" in names
    assert not any(n.startswith("platform/") for n in names)


def test_installed_wheel_validates_its_own_stock_pack(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True
    )
    # run from outside the checkout so nothing can come from the repo by accident
    where = subprocess.run(
        [str(py), "-c", "from quotaflow.resources import stock_pack_dir; print(stock_pack_dir())"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert str(env_dir) in where
    result = subprocess.run(
        [str(env_dir / "bin" / "quotaflow"), "pack", "validate", where],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "b2b_manufacturer" in result.stdout
