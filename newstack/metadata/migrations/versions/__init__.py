"""One module per schema revision, oldest first; the first one builds schema.py as of 0.1."""
