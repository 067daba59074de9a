"""ogasearch: reverse image search for the pixel art on OpenGameArt.org.

Pipeline: crawl -> store -> extract -> tiles -> embed -> index -> search -> web,
with ``catalog`` (the SQL database every stage records its work in) and ``cli``.
"""

__version__ = "0.1.0"
