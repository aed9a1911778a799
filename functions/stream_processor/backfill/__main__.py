"""``python -m stream_processor.backfill``: backfill a table from the command line."""

import sys

from stream_processor.backfill.cli import main

sys.exit(main())
