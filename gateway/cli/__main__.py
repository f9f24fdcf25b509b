"""`python -m gateway.cli`: the `omnistock` command."""

import sys

from gateway.cli.app import main

sys.exit(main())
