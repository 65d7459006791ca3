"""lmrec.encoders."""
