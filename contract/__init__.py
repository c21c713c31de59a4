"""What the web side and the worker share: settings, storage, layout, documents, jobs, Redis keys.

It imports neither side: both import it.
"""
