"""lmrec.serve."""
