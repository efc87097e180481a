"""`python -m newsletter.cli`."""

import sys

from newsletter.cli import main

sys.exit(main())
