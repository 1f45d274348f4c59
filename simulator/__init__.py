"""Local fakes of the four provider APIs, faithful enough to test signing, limits and faults."""
