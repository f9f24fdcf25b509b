"""`python -m omnistock.cli`: the `omnistock` command."""

import sys

from omnistock.cli.app import main

sys.exit(main())
