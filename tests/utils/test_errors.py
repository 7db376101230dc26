"""dydet's user errors: one hierarchy, each class also the builtin it has always been."""

import pytest

from dydet.data.checks import check_detection_dataset
from dydet.routing import check_route, check_threshold
from dydet.utils import errors
from dydet.utils.inputs import require_package


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ArgumentError, ValueError),
        (errors.ConfigError, ValueError),
        (errors.DataError, ValueError),
        (errors.CheckpointError, ValueError),
        (errors.MissingFileError, FileNotFoundError),
        (errors.DependencyError, ImportError),
    ],
)
def test_each_error_is_a_dydet_error_and_its_builtin(cls, builtin):
    assert issubclass(cls, errors.DydetError) and issubclass(cls, builtin)


def test_raise_sites_use_the_hierarchy(tmp_path):
    with pytest.raises(errors.ArgumentError, match="threshold=2"):
        check_threshold(2)
    with pytest.raises(errors.ArgumentError, match="route='medium'"):
        check_route("medium")
    with pytest.raises(errors.MissingFileError, match="not found"):
        check_detection_dataset(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("names: [a]\n")
    with pytest.raises(errors.DataError, match="no 'train:' entry"):
        check_detection_dataset(tmp_path / "bad.yaml")


def test_require_package_names_the_extra():
    assert require_package("json", "testing", "dev").dumps([]) == "[]"
    with pytest.raises(
        errors.DependencyError, match=r"ONNX export needs the \'no_such_pkg_x\' package.*dydet\[export\]"
    ):
        require_package("no_such_pkg_x", "ONNX export", "export")
