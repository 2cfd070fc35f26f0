"""Singer target for Microsoft Teams notifications."""
