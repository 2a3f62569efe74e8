"""voltmesh package."""
