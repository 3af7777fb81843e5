"""Thin HTTP handlers, grouped by area."""
