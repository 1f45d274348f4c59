"""volc."""
