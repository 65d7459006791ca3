"""lmrec."""
