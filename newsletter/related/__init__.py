"""Related links' arithmetic: terms of any script, tf-idf vectors, best matches (pure;
the index they fill is storage/neighbours.py)."""
