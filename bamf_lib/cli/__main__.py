"""``python -m bamf_lib.cli`` (as torchrun runs it): the ``bamf`` command."""

import sys

from bamf_lib.cli.main import main

sys.exit(main())
