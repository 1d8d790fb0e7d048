"""What training a masked diffusion LM takes, shared by `nclb train` and `nclb finetune`: the
MDLM loss, batches of left-padded sequences with their targets, the learning-rate schedule and
greedy evaluation."""
