"""Build the Cython kernels.

Directives are set here, once. OpenMP is detected by compiling and linking a tiny program; when
that fails the extension is built serially and a warning says so. Flags: -O3, never
-ffast-math (it breaks NaN propagation in max pooling and changes rounding), never
-march=native (wheels must run on any CPU of the target architecture).

The kernels are built twice on x86-64 with gcc/clang: `adapool._kernels` for the baseline
instruction set (runs on any x86-64) and `adapool._kernels_avx2` with -mavx2, which adapool
loads at import only when the CPU reports AVX2 (runtime dispatch, as numpy and torch do).
-ffp-contract=off keeps the compiler from fusing multiply-adds, so both builds give the same
bits.

Environment switches:
  ADAPOOL_DEBUG_BUILD=1   boundscheck/initializedcheck on, -O1 -g: for hunting memory bugs.
  ADAPOOL_NO_OPENMP=1     force a serial build.
  ADAPOOL_NO_AVX2=1       build only the baseline kernels.
  ADAPOOL_SANITIZE=address,undefined
                          build with these sanitizers (-O1 -g, bounds checks on); run the tests
                          with the sanitizer runtime preloaded (see README).
"""
import os
import platform
import shutil
import sys
import tempfile
import textwrap
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SANITIZE = os.environ.get("ADAPOOL_SANITIZE", "").strip()
DEBUG = os.environ.get("ADAPOOL_DEBUG_BUILD", "") not in ("", "0") or bool(SANITIZE)
SANITIZER_FLAGS = [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"] if SANITIZE else []

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
                # Probe with the sanitizer flags too: objects built with them only link with them.
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags + SANITIZER_FLAGS)
                compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=ldflags + SANITIZER_FLAGS)
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
                "adapool: OpenMP is disabled (ADAPOOL_NO_OPENMP) or not available with this compiler; "
                "building the kernels serially "
                "(correct but single-threaded). Install an OpenMP runtime (libgomp / libomp) and "
                "rebuild for parallel kernels.",
                stacklevel=1,
            )
            print("WARNING: adapool is being built WITHOUT OpenMP (serial kernels).", file=sys.stderr)
        msvc = self.compiler.compiler_type == "msvc"
        opt = (["/O2"] if msvc else (["-O1", "-g"] if DEBUG else ["-O3", "-ffp-contract=off"]) + ["-Wall"])
        if msvc or not X86_64:
            self.extensions = [e for e in self.extensions if not e.name.endswith("_avx2")]
        for ext in self.extensions:
            simd = ["-mavx2"] if ext.name.endswith("_avx2") else []
            ext.extra_compile_args = opt + simd + (flags[0] if flags else []) + SANITIZER_FLAGS
            ext.extra_link_args = (flags[1] if flags else []) + SANITIZER_FLAGS
        super().build_extensions()


X86_64 = platform.machine().lower() in ("x86_64", "amd64")
WANT_AVX2 = X86_64 and os.environ.get("ADAPOOL_NO_AVX2", "") in ("", "0")

# The kernels' def wrappers read ndarrays through numpy's C API (cheaper than typed memoryviews
# on tiny calls); built against numpy 2, they also run on numpy 1.x.
NUMPY = dict(include_dirs=[numpy.get_include()], define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
# The .pyx includes these: listed so that editing one rebuilds both builds of the kernels.
INCLUDES = ["adapool/_kernels.pyx", "adapool/_unpool.pxi", "adapool/_fractional.pxi", "adapool/_strided1d.pxi",
            "adapool/_elementwise.pxi"]
extensions = [Extension("adapool._kernels", ["adapool/_kernels.pyx"], depends=INCLUDES[1:], **NUMPY)]
if WANT_AVX2:
    extensions.append(Extension("adapool._kernels_avx2", ["adapool/_kernels_avx2.pyx"], depends=INCLUDES, **NUMPY))

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
