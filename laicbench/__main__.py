"""``python -m laicbench`` runs the command line."""

import sys

from laicbench.cli.main import main

sys.exit(main())
