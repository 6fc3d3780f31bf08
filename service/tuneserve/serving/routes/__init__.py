"""HTTP routes, one router per resource; each route is thin: validate, resolve, call."""
