"""Records: what reps fill in (deals, visits...), with history and soft delete."""
