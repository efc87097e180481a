"""The people on the list: the subscribers file, imports and exports, signup notices."""
