"""``python -m hub`` is the ``yolohub`` command."""

import sys

from hub.cli import main

sys.exit(main())
