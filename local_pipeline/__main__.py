"""`python -m local_pipeline` (what `make run` runs): the whole pipeline on this machine, then its report."""

import sys
from pathlib import Path

from local_pipeline.environment import quiet_grpc_core

quiet_grpc_core()  # before anything imports grpc

# `functions/` is the Lambda code root, where `stream_processor` lives: `make run` puts it on PYTHONPATH, a bare
# `python -m local_pipeline` from the repository root does not.
_FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
if _FUNCTIONS.is_dir() and str(_FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(_FUNCTIONS))

from local_pipeline.demo import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
