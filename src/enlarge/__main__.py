"""`python -m enlarge` runs the command line."""

import sys

from enlarge.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process (training data) imports the main module
    sys.exit(main())
