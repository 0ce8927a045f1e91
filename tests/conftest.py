import importlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

try:
    import torch
except ImportError:  # torch is an optional oracle
    torch = None

try:
    import onnxruntime
except ImportError:  # an extra: the ONNX runtime tests need it
    onnxruntime = None

# The other runtimes and graph optimizers validate() can use (extras: openvino, tract; the test
# extra installs all of them): module name -> how to install it.
OPTIONAL = {"openvino": "pip install openvino", "tract": "pip install tract", "onnxsim": "pip install onnxsim",
            "onnxslim": "pip install onnxslim", "onnxoptimizer": "pip install onnxoptimizer",
            "dask": "pip install 'adapool[dask]'", "distributed": "pip install distributed"}


def _version(name):
    try:
        module = importlib.import_module(name)
    except Exception:   # noqa: BLE001 (a broken install is as good as a missing one here)
        return None
    return str(getattr(module, "__version__", "installed"))


VERSIONS = {name: _version(name) for name in OPTIONAL}

# CI sets these so that a missing oracle or runtime fails the run instead of skipping silently.
REQUIRE_TORCH = os.environ.get("ADAPOOL_REQUIRE_TORCH", "") == "1"
REQUIRE_ONNXRUNTIME = os.environ.get("ADAPOOL_REQUIRE_ONNXRUNTIME", "") == "1"
REQUIRE_RUNTIMES = os.environ.get("ADAPOOL_REQUIRE_RUNTIMES", "") == "1"   # openvino, tract, the optimizers, dask

settings.register_profile(
    "default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


def pytest_configure(config):
    if REQUIRE_TORCH and torch is None:
        raise pytest.UsageError("ADAPOOL_REQUIRE_TORCH=1 but torch cannot be imported (pip install torch==2.13.0)")
    if REQUIRE_ONNXRUNTIME and onnxruntime is None:
        raise pytest.UsageError("ADAPOOL_REQUIRE_ONNXRUNTIME=1 but onnxruntime cannot be imported "
                                "(pip install -e '.[test]')")
    missing = [name for name, version in VERSIONS.items() if version is None]
    if REQUIRE_RUNTIMES and missing:
        raise pytest.UsageError(f"ADAPOOL_REQUIRE_RUNTIMES=1 but {', '.join(missing)} cannot be imported "
                                "(pip install -e '.[test]')")


def pytest_report_header(config):
    import adapool

    return [
        f"adapool {adapool.__version__}: openmp={adapool.openmp_enabled()} threads={adapool.get_num_threads()} "
        f"kernels={adapool._dispatch.kernels.simd_level()}",
        f"torch oracle: {torch.__version__ if torch else 'not installed (oracle tests skip)'}",
        f"onnxruntime: {onnxruntime.__version__ + ' ' + str(onnxruntime.get_available_providers()) if onnxruntime else 'not installed (runtime tests skip)'}",
        "other runtimes and optimizers: " + ", ".join(
            f"{name} {version or 'not installed (its tests skip)'}" for name, version in VERSIONS.items()),
    ]


@pytest.fixture(scope="session")
def torch_oracle():
    if torch is None:
        pytest.skip("torch is not installed: oracle tests need it (pip install torch==2.13.0)")
    return torch


@pytest.fixture(scope="session")
def ort():
    if onnxruntime is None:
        pytest.skip("onnxruntime is not installed: ONNX runtime tests need it (pip install onnxruntime)")
    return onnxruntime


def _optional(name):
    if VERSIONS[name] is None:
        pytest.skip(f"{name} is not installed: its tests need it ({OPTIONAL[name]})")
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def openvino():
    return _optional("openvino")


@pytest.fixture(scope="session")
def tract():
    return _optional("tract")


@pytest.fixture(scope="session")
def onnxsim():
    return _optional("onnxsim")


@pytest.fixture(scope="session")
def onnxslim():
    return _optional("onnxslim")


@pytest.fixture(scope="session")
def onnxoptimizer():
    return _optional("onnxoptimizer")


@pytest.fixture(scope="session")
def dask_array():
    _optional("dask")
    return importlib.import_module("dask.array")


@pytest.fixture(scope="session")
def distributed():
    return _optional("distributed")


@pytest.fixture(autouse=True)
def _no_back_off():
    """Each test starts with the loaded-machine back-off cleared, so a busy spell during one
    test doesn't make the next one's parallel calls run serially (results are the same;
    coverage of the parallel paths is not)."""
    from adapool._dispatch import kernels
    kernels._contention(reset=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
