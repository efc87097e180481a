"""Related links: terms of any script, tf-idf vectors, the neighbour index kept at ingest."""
