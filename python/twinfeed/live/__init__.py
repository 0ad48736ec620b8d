"""twinfeed.live."""
