"""Side-by-side benchmarks of teledispatch and a plain one-task-per-message baseline."""
