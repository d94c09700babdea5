"""The shipped model computes its golden scores on older x86 CPUs too, through the production loader.

onnxruntime picks its int8 kernels by CPU features. The 2026.11.0 export (signed weights) scored up to 0.099
off its golden values on an AVX2-only CPU, where u8 x s8 sums saturate; the portable export must not. The
loader is run under ``qemu-x86_64 -cpu MODEL``, which reports (and emulates) an older CPU to onnxruntime.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import pytest

# The production path: OnnxDetector.load scores the golden inputs and raises on drift beyond the tolerance.
LOAD = (
    "import asyncio\n"
    "from vigil.detector import OnnxDetector, load_default_model_dir\n"
    "async def main():\n"
    "    detector = await OnnxDetector.load(load_default_model_dir(), intra_op_threads=1)\n"
    "    print('golden check:', detector.info.name, detector.info.version)\n"
    "    await detector.aclose()\n"
    "asyncio.run(main())\n"
)

QEMU = shutil.which("qemu-x86_64")
# OpenBLAS's name for each emulated CPU model's kernels.
OPENBLAS_CORES = {"Haswell": "HASWELL", "Nehalem": "NEHALEM"}
pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or (QEMU is None and not os.environ.get("CI")),
    reason="needs qemu-x86_64 on an x86_64 host (.ci/run installs qemu-user)",
)


@pytest.mark.parametrize(
    "cpu",
    [
        "Haswell",  # AVX2, no AVX-512: where the old export drifted
        "Nehalem",  # SSE4.2 only: onnxruntime's oldest x86 kernels
    ],
)
def test_the_golden_check_passes_on_an_older_cpu(cpu: str) -> None:
    assert QEMU is not None, "CI runs this test: .ci/run installs qemu-user"
    # OpenBLAS (inside numpy, unused by the detector) picks its kernels from what it reads of the CPU, and
    # under qemu on some hosts (an AMD EPYC here) it picks AVX ones for an emulated Nehalem and dies of
    # SIGILL on `import numpy`; a real CPU of that model gets its own kernels, which this names outright.
    # onnxruntime, whose int8 kernels this test is about, still reads the emulated CPU by itself.
    env = {**os.environ, "OPENBLAS_CORETYPE": OPENBLAS_CORES[cpu]}
    result = subprocess.run(
        [QEMU, "-cpu", cpu, sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "golden check: vigil-minilm-grooming" in result.stdout
