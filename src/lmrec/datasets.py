"""Named data sets: ``lmrec.datasets.load("ml-100k")``.

The loaders live in `lmrec.data.loaders`; this module keeps the short spelling for scripts and notebooks.
"""

from lmrec.data.loaders import available, default_cache_dir, download, load, load_clothing_reviews

__all__ = ["available", "default_cache_dir", "download", "load", "load_clothing_reviews"]
