"""``python -m spikewatch`` runs the CLI."""

import sys

from spikewatch.cli import main

sys.exit(main())
