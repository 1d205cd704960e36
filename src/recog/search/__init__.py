"""Visual search, near-duplicates, clustering and dataset audits, on embeddings and the shared vector store.

- :mod:`recog.search.index`: named indexes (:class:`Indexes`, :class:`SearchIndex`): SQLite holds ids,
  metadata and vectors; faiss serves queries (:mod:`recog.search.ann`), updated incrementally.
- :mod:`recog.search.where`: the ``--where`` metadata filter (a safe parser, compiled to bound SQL).
- :mod:`recog.search.images`: index folders (with a metadata CSV) and query with images.
- :mod:`recog.search.dedup`, :mod:`recog.search.cluster`, :mod:`recog.search.audit`: near-duplicates,
  clusters and the dataset audit report.

Importing this package loads neither torch nor faiss; they load when first used.
"""

from recog.search.images import IndexReport, index_folder, load_embedder, model_ref, query_images
from recog.search.index import Indexes, SearchIndex, default_db
from recog.search.types import IndexInfo, ModelRef, SearchHit, SearchHits
from recog.search.where import Filter, parse

__all__ = ["Filter", "IndexInfo", "IndexReport", "Indexes", "ModelRef", "SearchHit", "SearchHits", "SearchIndex",
           "default_db", "index_folder", "load_embedder", "model_ref", "parse", "query_images"]
