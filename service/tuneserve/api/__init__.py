"""The public HTTP contract as pydantic models, kept apart from serving logic."""
