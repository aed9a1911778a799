"""``python -m stream_processor.redrive``: redrive a dead-letter queue from the command line."""

import sys

from stream_processor.redrive.entry import main

sys.exit(main())
