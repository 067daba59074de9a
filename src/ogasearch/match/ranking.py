"""Every tier, weight, penalty and threshold that orders search results, in one place.

Each constant says which measurement set it: a run in docs/benchmarks.md (the quality
benchmark, ``bench/eval_quality.py``), or "not measured" when the value was chosen by
reasoning alone and no run compared it with another. Changing one of them changes what users
see first: re-run the quality benchmark and record the run.

Users: ``match.matching`` (tiers, penalties, verification thresholds; the defaults of
``MatchConfig``), ``search.keywords`` (bm25 column weights), ``search.catalog_reads`` and
``search.grouping`` (near-copy grouping) and ``search.service`` (the neighbour pool).
"""

from __future__ import annotations

# -- matcher: which path found an image (``match.matching``) -----------------------------------

# Tier of each path, strongest first; a result keeps the strongest path that found it and
# results rank by tier, then by score. Not measured: the order is by how sure each path is
# (equal canonical pixels, then pixel-verified near-duplicates, then feature vectors).
TIERS: dict[str, int] = {"exact": 4, "near": 2, "vector": 1, "region": 1}
# A recolouring (same colour-index pattern) beats a pixel-verified match. Measured: quality
# run 16:04 in docs/benchmarks.md (hue recall@1 0.913 -> 0.920).
STRUCTURE_TIER = 3

# Subtracted from matches found through the query's mirror image: a tile set often holds both
# a sprite and its mirror, and the query as given must win that tie. Not measured.
MIRROR_PENALTY = 0.005
# Subtracted from matches of the query with its flat background kept, so the view with the
# background removed wins a tie. Not measured (added with pixel verification, quality run
# 15:43, which measured the kept view as a whole: white background 0.900 -> 0.963).
KEPT_PENALTY = 0.002
# Subtracted from matches of the query's un-blended view (``preprocess.unblend``: a query on a
# flat colour with its blends turned back into partly transparent pixels, a guess), so the
# views of the pixels as given win a tie. Not measured.
UNBLEND_PENALTY = 0.003
# Subtracted from region (scene cut-out) scores before fusion. Not measured (0: off).
REGION_PENALTY = 0.0

# Pixel similarity (``verify.pixel_similarity``, ``verify.scene_similarity``) that makes a
# candidate a near-duplicate, or art found in a scene. Not measured as a threshold: the 15:43
# quality run added verification at 0.9 (crop 0.830 -> 0.880, screenshot 0.273 -> 0.363) and
# no other value was compared.
VERIFY_MIN = 0.9
# The region path runs when the best whole-image score is below this (a good whole-image
# match means the query is the sprite itself, not a scene holding it). Not measured.
REGION_BELOW = 0.9

# -- keywords (``search.keywords``) ---------------------------------------------------------

# Keyword ranking (``search.keywords``): BM25F over the normalised fields, computed in Python
# over the candidate pages the database returns, so SQLite and PostgreSQL rank alike. A title
# hit counts more than a tag or an author, more than a file name, more than the description; a
# word matched only as the beginning of a longer word counts half. The weights are not tuned:
# bench/eval_keywords.py (docs/benchmarks.md, "Keyword search") measured hit@10 1.00 in every
# query class with them, on SQLite and PostgreSQL alike.
FIELD_WEIGHTS = {"title": 10.0, "tags": 4.0, "authors": 4.0, "description": 1.0, "files": 2.0}
K1 = 1.2  # BM25's usual term-frequency saturation
B = 0.75  # BM25's usual length normalisation
PREFIX_WEIGHT = 0.5
MAX_CANDIDATES = 5000  # pages ranked per query (lowest page ids first when more match)
MIN_TYPO_LENGTH = 4  # shorter unknown words are not corrected: too many one-edit neighbours

# -- grouping copies into one result (``search.grouping``) ----------------------------------

# Near-copies (re-encodings, light edits) of the same size are one result when their
# perceptual hashes are at most this many bits apart ...
NEAR_PHASH_BITS = 4
# ... and their feature vectors at least this similar (the phash alone confuses flat or
# simple tiles). Not measured, either of them.
NEAR_COSINE = 0.97
# Matched images compared pairwise for near-copies, per size. Not measured (bounds the
# pairwise work: 64 images are 2,016 pairs).
NEAR_BUCKET = 64

# -- the neighbour pool (``search.service``) ------------------------------------------------

# Neighbours fetched for ``k`` results: 4k + 20, at most 1,000 (copies grouped into one
# result and filtered sources use some up). Not measured.
POOL_PER_RESULT = 4
POOL_EXTRA = 20
POOL_CAP = 1000
# When filters (licence, art type: applied after the neighbours come back) leave fewer than
# k results, the pool grows this many times ...
WIDEN_FACTOR = 4
# ... up to this largest pool (and never past the index's own limit, ``ogasearch.index.MAX_K``,
# nor the number of indexed vectors). Not measured, either of them.
MAX_POOL = 16_000
