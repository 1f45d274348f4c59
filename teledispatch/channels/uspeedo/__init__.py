"""uspeedo."""
