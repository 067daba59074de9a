"""Provenance: the same art on more than one page, earliest page first, with flags.

``stage`` (the write path, after ``index``) matches new images with the search's own matcher
(``ogasearch.match``) and stores the groups in the catalog (``copy_links``, ``copy_groups``,
``copy_group_members``); ``licences`` says which licences a copy may carry; ``hows`` names
the edit that turns the original into the copy; ``flags`` compares a copy's page with the
original's. The query side reads the stored groups (``search.provenance``).
"""
