"""One revision per feature; each names the newest one on main as its down_revision, and
the server upgrades to "heads", so branches made in parallel all apply."""
