"""nclb's own forwards over a key/value cache, one module a family, each with
`build(model) -> CachedForward` (nclb.models.kvcache)."""
