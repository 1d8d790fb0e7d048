"""Models behind one interface: token ids in, logits for every position out."""
