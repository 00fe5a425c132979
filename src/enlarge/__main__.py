"""`python -m enlarge` runs the command line."""

import sys

from enlarge.cli.main import main

sys.exit(main())
