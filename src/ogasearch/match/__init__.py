"""The multi-path matcher the search answers queries with, below both of its users.

``matching`` (the matcher, its interfaces and in-memory implementations), ``verify`` (pixel
verification), ``regions`` (scene reduction), ``ranking`` (every tier, penalty and threshold),
``lookups`` (the catalog queries behind its interfaces) and ``adapters`` (the catalog, the
store and the vector index behind them). The query side (``search``) and the write path's
provenance stage (``provenance``) both find copies with it, so a copy the search shows on a
result card is a copy the conflicts report lists.
"""
