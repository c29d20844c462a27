"""lut package."""
