"""Build the Cython kernels.

Directives are set here, once. OpenMP is detected by compiling and linking a tiny program; when
that fails the extension is built serially and a warning says so. Flags: -O3, never
-ffast-math (it breaks NaN propagation in max pooling and changes rounding), never
-march=native (wheels must run on any CPU of the target architecture).

Environment switches:
  ADAPOOL_DEBUG_BUILD=1   boundscheck/initializedcheck on, -O1 -g: for hunting memory bugs.
  ADAPOOL_NO_OPENMP=1     force a serial build.
"""
import os
import shutil
import sys
import tempfile
import textwrap
import warnings

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("ADAPOOL_DEBUG_BUILD", "") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def openmp_flags(compiler):
    """Compile and link flags that give OpenMP with this compiler, or None."""
    if os.environ.get("ADAPOOL_NO_OPENMP", "") not in ("", "0"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    tmp = tempfile.mkdtemp(prefix="adapool-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write(OPENMP_PROBE)
        for cflags, ldflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=ldflags)
            except Exception:  # any compile or link failure means "not this way"
                continue
            return cflags, ldflags
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        flags = openmp_flags(self.compiler)
        if flags is None:
            warnings.warn(
                "adapool: OpenMP was not found for this compiler; building the kernels serially "
                "(correct but single-threaded). Install an OpenMP runtime (libgomp / libomp) and "
                "rebuild for parallel kernels.",
                stacklevel=1,
            )
            print("WARNING: adapool is being built WITHOUT OpenMP (serial kernels).", file=sys.stderr)
        msvc = self.compiler.compiler_type == "msvc"
        opt = (["/O2"] if msvc else (["-O1", "-g"] if DEBUG else ["-O3"]))
        for ext in self.extensions:
            ext.extra_compile_args = opt + (flags[0] if flags else [])
            ext.extra_link_args = flags[1] if flags else []
        super().build_extensions()


extensions = [
    Extension(
        "adapool._kernels",
        ["adapool/_kernels.pyx"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
