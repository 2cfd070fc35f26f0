"""Singer target for Databricks (Delta Lake and SQL warehouses)."""

import os

# delta-rs allocates through a jemalloc of its own, by default with an arena and a cache per thread of its runtime:
# in a process that commits batch after batch that memory only grows (measured: 40 MB over 300 commits; 14 MB with
# one arena and no thread caches). Set before delta-rs is loaded; a setting of the user's own wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,tcache:false")
