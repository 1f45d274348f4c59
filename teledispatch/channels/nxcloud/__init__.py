"""nxcloud."""
