"""Availability, pure: the stock network (nodes, groups, channels and their rules), available
to promise per position and per channel, pickup search, positions and the gateway's view."""
