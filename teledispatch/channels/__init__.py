"""One module per provider operation: pure request building and response parsing."""
