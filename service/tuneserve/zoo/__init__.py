"""Offline starter models: built here from generated data, registered as version 1."""
