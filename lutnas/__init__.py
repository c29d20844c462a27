"""lutnas package."""
