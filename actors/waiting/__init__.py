"""Waiting areas, their opening hours and the caller rooms they open."""
