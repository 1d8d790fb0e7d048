"""Running one experiment configuration: open a run folder, decode and score, finalize."""
