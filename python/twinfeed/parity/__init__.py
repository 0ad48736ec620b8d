"""twinfeed.parity."""
