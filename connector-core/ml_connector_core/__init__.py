"""Shared building blocks for ml-connector plugins."""
