"""Singer tap for IFS Cloud."""
