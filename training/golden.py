"""Write ``golden.json`` for an existing model directory: its golden inputs scored alone on this runtime.

    python -m training.golden --model-dir detector/model [--tolerance 0.005]

Run it with the onnxruntime the model was calibrated on (the locked one, ``requirements/runtime.lock``): the
file records this runtime as the reference, and ``OnnxDetector.load`` refuses runtimes that score the inputs
differently. ``python -m training.train`` writes the file for every model it trains; this is for models
made before that, and for models from elsewhere (``[detector] model_dir``). It needs only the runtime
dependencies, not the ``train`` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vigil.detector.golden import DEFAULT_TOLERANCE, GOLDEN_FILE
from vigil.detector.onnx_detector import ModelLoadError, write_golden


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="the model directory to write it in")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest absolute difference allowed on a probability (default {DEFAULT_TOLERANCE:g})",
    )
    args = parser.parse_args(argv)
    try:
        golden = write_golden(args.model_dir, tolerance=args.tolerance)
    except (ModelLoadError, ValueError) as error:
        print(f"training.golden: {error}", file=sys.stderr)
        return 2
    made = golden.produced_with
    print(
        f"wrote {args.model_dir / GOLDEN_FILE}: {len(golden.cases)} inputs of {golden.model_name} "
        f"{golden.model_version}, scored alone with onnxruntime {made.onnxruntime}, tokenizers "
        f"{made.tokenizers}; tolerance {golden.tolerance:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
