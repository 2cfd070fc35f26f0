"""target-jaggaer: mapped IFS suppliers and purchase orders created or updated in JAGGAER by their IFS key."""
