"""Tasks: one torch-free spec module each (schemas, route, labels, defaults), their handlers
in ``handlers/``, and the catalog that registers them (``catalog.BUILTIN``)."""
