"""docs/architecture.md's module map names every module of the package."""

from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "anomaly_maps"
DOC = (ROOT / "docs" / "architecture.md").read_text()
MAP = DOC[DOC.index("## Module map") : DOC.index("## How to add")]


def _modules() -> list[str]:
    """Top-level modules and packages, and the modules of the workflow packages."""
    names = [
        p.stem if p.suffix == ".py" else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name != "__init__.py"
    ]
    for package in ("training", "benchmark", "evaluation"):
        names += [p.stem for p in (PACKAGE / package).glob("[!_]*.py")]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_module_map_names_every_module(name):
    assert name in MAP, f"docs/architecture.md: the module map does not mention {name!r}"


def test_readme_development_points_to_the_architecture():
    readme = (ROOT / "README.md").read_text()
    development = readme[readme.index("## Development") :]
    assert "docs/architecture.md" in development and "../shared" not in development
