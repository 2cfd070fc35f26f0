"""tap-jiracloud: Jira Cloud issues through REST API v3, incremental on `updated`."""
