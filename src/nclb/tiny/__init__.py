"""The embedded tiny MDLM: a character-level bidirectional transformer trained on synthetic tasks."""
