"""The commands built on the run path: posterior, fine-tuning, trace scores, KL, likelihood,
training the tiny model, benchmarks."""
