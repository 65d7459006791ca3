"""lmrec.eval."""
