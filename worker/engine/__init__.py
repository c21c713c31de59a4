"""The analytics engine: git in, documents out, with no queue, no GitHub and no web framework.

`pipeline.analyze_codebase` runs the phases in order: fetch, refs delta, extract, store,
snapshot, aggregate, branches, export. The jobs and the command line both call it.
"""
