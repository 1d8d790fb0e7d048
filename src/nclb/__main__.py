"""`python -m nclb ...` (the same as the `nclb` command; torchrun starts ranks this way:
`torchrun --standalone --nproc_per_node 2 -m nclb run ...`)."""

from nclb.cli import main

if __name__ == "__main__":
    main()
