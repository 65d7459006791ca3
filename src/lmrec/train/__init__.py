"""lmrec.train."""
