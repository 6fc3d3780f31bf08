"""Serving on Ray Serve: the gateway, one TaskServer per task, and the app builder."""
