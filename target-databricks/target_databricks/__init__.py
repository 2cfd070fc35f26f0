"""Singer target for Databricks (Delta Lake and SQL warehouses)."""
