"""Venue adapters: the port the brain calls (:mod:`twinfeed.venues.port`), one package a venue."""
