"""Generators of the starter models' synthetic training data (templates + word lists).

Every generator has a ``train`` and a ``heldout`` split built from *different* templates
and word lists, so a starter model's recorded metrics measure generalisation, not recall.
"""
