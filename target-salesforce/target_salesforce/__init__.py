"""target-salesforce: mapped IFS records upserted into Salesforce objects by external id."""
