"""The arq jobs (sync, installation, purge, reconcile) and what they need: the per-codebase
lock, the GitHub App's tokens and the org files.
"""
