"""``python -m laicbench`` runs the command line."""

import sys

from laicbench.cli import main

sys.exit(main())
