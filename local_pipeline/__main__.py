"""`python -m local_pipeline` (what `make run` runs): the whole pipeline on this machine, then its report."""

import sys

from local_pipeline.environment import functions_on_path, quiet_grpc_core

quiet_grpc_core()  # before anything imports grpc
functions_on_path()

from local_pipeline.demo import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
