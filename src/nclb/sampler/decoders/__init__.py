"""The decoders, one a file; each registers itself (`@register("decoder", NAME)`) and validates
its own fields. nclb.registry imports every module here."""
