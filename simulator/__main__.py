"""``python -m simulator`` runs the same CLI as ``teledispatch simulate``."""

import sys

from simulator.server import main

sys.exit(main())
