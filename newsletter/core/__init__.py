"""The leaves every stage may import: data types, errors, settings, clock, text, tokens."""
