"""The tests exercise the installed wheel, and the wheel installs only `zipp_persona`."""

import importlib.metadata
import pathlib
import sys

import zipp_persona as zipp
from zipp_persona import _zipp


def test_imported_from_the_venv_not_the_source_tree(repo):
    where = pathlib.Path(zipp.__file__).resolve()
    assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), where
    assert not where.is_relative_to(repo / "zipp-py" / "python"), where
    assert pathlib.Path(_zipp.__file__).parent == where.parent


def test_the_distribution_installs_only_zipp_persona():
    files = importlib.metadata.files("zipp-persona")
    top = {f.parts[0] for f in files}
    assert top == {"zipp_persona", "zipp_persona-0.1.0.dist-info"}, top
    names = {f.name for f in files if f.parts[0] == "zipp_persona"}
    assert {"__init__.py", "_zipp.pyi", "py.typed", "_provision.py", "_errors.py", "ray.py"} <= names
    assert importlib.metadata.version("zipp-persona") == zipp.__version__ == "0.1.0"
    # numpy, and Ray only with the `ray` extra (zipp_persona.ray).
    requires = importlib.metadata.requires("zipp-persona")
    assert requires[0] == "numpy" and len(requires) == 2, requires
    assert requires[1].replace(" ", "").replace("'", '"') == 'ray[data]>=2.50;extra=="ray"', requires
    assert importlib.metadata.metadata("zipp-persona").get_all("Provides-Extra") == ["ray"]


def test_public_names_exist():
    for name in zipp.__all__:
        assert hasattr(zipp, name), name
    assert "provision-models.sh" in zipp.PROVISION_HINT
