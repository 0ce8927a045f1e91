# The same kernels, compiled a second time with -mavx2 (see setup.py). adapool/_dispatch.py
# loads this module only on CPUs that report AVX2; everything else runs the baseline build.
include "_kernels.pyx"
