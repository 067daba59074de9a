"""The catalog's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Every stage keeps its per-item state in a column of the item's own row, so that the
work an item needs and the record of what was done change in one transaction:

    pages.state   listed -> fetched | gone | failed           (crawl)
    files.state   pending -> stored -> done | failed | gone    (download, then extract)
    images.tiles_state / images.embed_state  pending -> done | failed | skipped
    images.indexed                                              (index)
    copy_checks.grouped  (row missing) -> false -> true         (provenance)

Several workers share one catalog by claiming pending rows with ``claims.claim`` (row locks with
SKIP LOCKED on PostgreSQL), so a dead worker's claims vanish with its connection.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)

# 2: patch fingerprints in embeddings.patches; 3: kind_vectors; 4: map_points;
# 5: no unused hash indexes, hash keys indexed on 12 hex digits, codecs (catalog.migrate)
SCHEMA_VERSION = 5

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

# Conditional-request validators and body hash of listing pages and other fetched URLs.
http_validators = Table(
    "http_validators",
    metadata,
    Column("url", String(2000), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("body_sha256", String(64)),
    Column("fetched_at", DateTime(timezone=True)),
)

authors = Table(
    "authors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("url", String(2000)),  # /users/NAME on OGA, or an external site, or None
)

licenses = Table(
    "licenses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),  # "CC-BY-SA 3.0"
    Column("url", String(2000)),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(500), nullable=False, unique=True),
)

pages = Table(
    "pages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(1000), nullable=False, unique=True),  # /content/SLUG, decoded
    Column("url", String(2000), nullable=False),  # the URL fetched
    Column("node_id", Integer),
    Column("title", Text),
    Column("post_date", DateTime(timezone=True)),  # submission time (UTC)
    Column("post_date_text", String(200)),  # as shown on the page
    Column("art_type", String(200)),
    Column("description", Text),
    Column("attribution", Text),
    Column("favorites", Integer),
    Column("files_unavailable", Boolean, nullable=False, default=False),
    Column("record_sha256", String(64)),  # hash of the parsed record: detects real change
    Column("state", String(20), nullable=False, default="listed"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("listed_at", DateTime(timezone=True)),
    Column("fetched_at", DateTime(timezone=True)),  # last time the body was parsed
    Column("checked_at", DateTime(timezone=True)),  # last request (304 included)
    Column("etag", String(500)),  # validators of the last 200, for conditional re-checks
    Column("last_modified", String(100)),
    Index("ix_pages_state", "state"),
)

page_authors = Table(
    "page_authors",
    metadata,
    Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True),
    Column("author_id", ForeignKey("authors.id"), primary_key=True),
    Column("role", String(20), primary_key=True),  # author | submitter | collaborator
    Column("position", Integer, nullable=False, default=0),
)

page_licenses = Table(
    "page_licenses",
    metadata,
    Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True),
    Column("license_id", ForeignKey("licenses.id"), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
)

page_tags = Table(
    "page_tags",
    metadata,
    Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
    Column("position", Integer, nullable=False, default=0),
)

# Files linked from a content page: kind "file" (the File(s) field) or "preview" (full-size
# preview image). ``present`` turns false when the page stops listing the file.
files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2000), nullable=False),  # fetched exactly as given (HTML-unescaped)
    Column("name", String(1000), nullable=False),  # decoded file name from the URL path
    Column("link_text", String(1000)),
    Column("kind", String(20), nullable=False, default="file"),
    Column("fid", Integer),
    Column("declared_size", BigInteger),
    Column("position", Integer, nullable=False, default=0),
    Column("present", Boolean, nullable=False, default=True),
    Column("state", String(20), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("sha256", String(64)),  # the stored blob (read with the row, never looked up)
    Column("size", BigInteger),
    Column("content_type", String(200)),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("downloaded_at", DateTime(timezone=True)),
    Column("extracted_at", DateTime(timezone=True)),
    UniqueConstraint("page_id", "url", name="uq_files_page_url"),
    Index("ix_files_state", "state"),
)

# Content-addressed blobs in the store (``store/ab/cd/<sha256>``).
blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
)

# Every entry met while walking an archive (nested archives included). ``path`` is the full
# path from the downloaded file, nested archives joined with "/" (``pack.zip`` then
# ``pack.zip/inner/a.png``). ``state``: ok | refused | failed, with ``error`` saying why.
members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", ForeignKey("members.id", ondelete="CASCADE")),  # enclosing archive
    Column("path", String(4000), nullable=False),
    Column("kind", String(20), nullable=False),  # image | archive | other
    Column("size", BigInteger),
    Column("sha256", String(64)),  # set for stored members (images, nested archives)
    Column("state", String(20), nullable=False, default="ok"),
    Column("error", Text),
    UniqueConstraint("file_id", "path", name="uq_members_file_path"),
)

# One row per image occurrence: a downloaded image file (archive_path ""), an image inside an
# archive, or a tile cut from either (parent_id set, tile_* its box, box "x,y,w,h").
images = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE")),
    Column("archive_path", String(4000), nullable=False, default=""),
    Column("box", String(100), nullable=False, default=""),
    Column("parent_id", ForeignKey("images.id", ondelete="CASCADE")),
    Column("tile_x", Integer),
    Column("tile_y", Integer),
    Column("tile_w", Integer),
    Column("tile_h", Integer),
    Column("sha256", String(64), nullable=False),  # bytes of the stored blob (whole images)
    # RGBA pixels of the first frame: format-independent (read with the row, never looked up)
    Column("pixel_sha256", String(64)),
    Column("phash", String(16)),  # 64-bit perceptual hash, hex
    # hash of the canonical form (upscale undone, cropped, alpha normalised; set by embed):
    # groups re-uploads of one image and answers exact/near-duplicate queries
    Column("canonical_sha256", String(64)),
    Column("structure_sha256", String(64)),  # colour-index pattern: equal under recolouring
    Column("format", String(20)),
    Column("mode", String(20)),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("frames", Integer, nullable=False, default=1),
    Column("tiles_state", String(20), nullable=False, default="pending"),
    Column("embed_state", String(20), nullable=False, default="pending"),
    Column("indexed", Boolean, nullable=False, default=False),
    Column("error", Text),
    UniqueConstraint("file_id", "archive_path", "box", name="uq_images_occurrence"),
    Index("ix_images_sha256", "sha256"),
    Index("ix_images_parent", "parent_id"),
    Index("ix_images_tiles_state", "tiles_state"),
    Index("ix_images_embed_state", "embed_state"),
)

# The canonical and structure hashes are looked up by their first ``HASH_KEY_CHARS`` hex digits
# (48 bits: the lookup then compares the whole value), so their indexes hold a quarter of the
# bytes: a lookup filters on ``hash_key(column)`` and on the column itself.
HASH_KEY_CHARS = 12


def hash_key(column: ColumnElement[str]) -> ColumnElement[str]:
    """The indexed prefix of a hash column (constants inline: SQLite matches an expression
    index only on the same expression)."""
    return func.substr(column, literal_column("1"), literal_column(str(HASH_KEY_CHARS)))


HASH_KEY_INDEXES = (
    Index("ix_images_canonical_key", hash_key(images.c.canonical_sha256)),
    Index("ix_images_structure_key", hash_key(images.c.structure_sha256)),
)

# One feature vector per image and model (written by the embed stage, read by the index stage
# and by index rebuilds). ``vector`` holds float16 little-endian bytes, L2-normalised: the
# model's full vector until a codec is fitted, then its code (``embed.codec``; ``model`` then
# names the codec too, ``dim`` is the code's).
# ``patches``: the image's patch fingerprints (``embed.patches``), hashes of a sample of its
# pixel patches which a crop of it, a tile cut from it or a screenshot showing it still holds,
# as one blob of their sorted 32-bit keys (``catalog.fingerprints``; NULL or empty: none).
# The matcher reads them from the patch table the index stage builds (``index.patches``).
embeddings = Table(
    "embeddings",
    metadata,
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("patches", LargeBinary),
)

# One "kind of art" vector per image (written by the embed stage beside ``embeddings``, read by
# "more like this": ``search.kinds``), kept apart from the lookup vector, which rewards the
# same pixels rather than the same kind of art. ``model`` names the recipe
# (``embed.extractors.kind_vector``); ``vector`` as in ``embeddings`` (``catalog.vectors``).
kind_vectors = Table(
    "kind_vectors",
    metadata,
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

# The fitted vector codec of each extractor and vector kind (``embed.codec``): a refit replaces
# the row. In the catalog, not beside it, so that every worker sharing the catalog projects
# with the same codec. ``payload``: npz bytes (float16 components and what they were fitted on).
codecs = Table(
    "codecs",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("kind", String(50), primary_key=True),
    Column("payload", LargeBinary, nullable=False),
)

# Append-only log of every failure: which stage, which item, why.
failures = Table(
    "failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stage", String(50), nullable=False),
    Column("item", String(4000), nullable=False),  # "page SLUG", "file URL", "member URL!path"
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# -- provenance: the same art on more than one page (written by ``provenance.stage``) ---------

# Images the provenance stage has matched against the catalog (an image row replaced by a
# changed file is a new row, so it is matched again); ``grouped`` turns true once the groups
# its links touch are rebuilt (a kill in between leaves it false: the next run regroups).
copy_checks = Table(
    "copy_checks",
    metadata,
    Column(
        "image_id",
        ForeignKey("images.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("grouped", Boolean, nullable=False, default=False),
)

# A copy found by the matcher between images on two different pages (``low_id`` < ``high_id``):
# ``how`` exact | upscaled | flipped | recoloured | cropped | re-compressed | cut from a sheet.
copy_links = Table(
    "copy_links",
    metadata,
    Column("low_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("high_id", ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("how", String(40), nullable=False),
    Column("score", Float, nullable=False),
    Index("ix_copy_links_high", "high_id"),
)

# One group of the same art on several pages: the earliest page's image, and the union of its
# members' flags (comma-separated: different-author, licence-conflict, same-author).
copy_groups = Table(
    "copy_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("original_image_id", ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("pages", Integer, nullable=False),
    Column("flags", String(200), nullable=False, default=""),
    Column("first_post_date", DateTime(timezone=True)),
    Column("built_at", DateTime(timezone=True), nullable=False),
)

# A page of a group (position 0: the earliest, the original) with the image that holds the art,
# how it matches the original's and its flags against the original.
copy_group_members = Table(
    "copy_group_members",
    metadata,
    Column("group_id", ForeignKey("copy_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), nullable=False),
    Column("how", String(40), nullable=False),  # "original" for position 0
    Column("score", Float, nullable=False),
    Column("flags", String(200), nullable=False, default=""),
    Index("ix_copy_group_members_image", "image_id"),
    Index("ix_copy_group_members_page", "page_id"),
)

# -- the map of all the art (written by ``artmap.stage``, read by ``search.artmap``) ---------

# Where an image lies on the 2D map, in map units (the square [0, 256) of Leaflet's zoom 0).
# ``placed``: "fit" (laid out with the map) or "transform" (placed into an existing map);
# ``drawn`` turns true once the map tiles under the point show it. No foreign key on purpose:
# the point of an image that is gone (or no longer indexed) stays until the map stage has
# redrawn the tiles that show it, then goes.
map_points = Table(
    "map_points",
    metadata,
    Column("image_id", Integer, primary_key=True, autoincrement=False),
    Column("x", Float, nullable=False),
    Column("y", Float, nullable=False),
    Column("placed", String(20), nullable=False),
    Column("drawn", Boolean, nullable=False, default=False),
    Index("ix_map_points_drawn", "drawn"),
)
