"""Singer target for Databricks (Delta Lake and SQL warehouses)."""

import os

# delta-rs allocates through a jemalloc of its own, by default with an arena and a cache per thread of its runtime:
# in a process that commits batch after batch that memory only grows (measured: 40 MB over 300 commits; 14 MB with
# one arena and no thread caches). Set before delta-rs is loaded; a setting of the user's own wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,tcache:false")
# pyarrow's default pool (its own jemalloc) keeps what a batch freed for the next one. A 200,000-row full load on the
# Delta path peaked at 357 MB with it and 320 MB with the system allocator in batches of 20,000, 259 and 219 MB in
# batches of 5,000, at the same speed. The system allocator hands it back. Set before pyarrow is loaded; a setting of the user's own wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
