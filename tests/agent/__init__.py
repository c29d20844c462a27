"""Tests of the on-device agent, its client and their commands."""
