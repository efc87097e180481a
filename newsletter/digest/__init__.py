"""From archive to email: periods, the selection of an issue, enrichment, rendering."""
