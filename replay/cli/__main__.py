"""``python -m replay.cli`` is ``bufferzone``."""

import sys

from replay.cli import main

sys.exit(main())
