"""target-jira: IFS purchase orders and work orders as Jira Cloud issues, one issue per IFS key."""
