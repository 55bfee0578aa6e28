"""`python -m sd1kit.cli`: the `sd1kit` command."""

import sys

from sd1kit.cli import main

sys.exit(main())
