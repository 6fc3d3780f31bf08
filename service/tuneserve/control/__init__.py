"""The control plane: use cases over the registry, the artifact store and the job queue.

No HTTP and no Ray Serve here: routes call these services, and the serving layer hands them
what they need of it (the ``Fleet`` of replicas, a way to wake the job runner).
"""
