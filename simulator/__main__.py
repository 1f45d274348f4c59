"""``python -m simulator`` runs the same CLI as ``teledispatch simulate``."""

import sys

from teledispatch.simulator.server import main

sys.exit(main())
