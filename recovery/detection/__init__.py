"""Detecting recovery abuse (issue 16): caller identifiers, the watch-list and the rules."""
