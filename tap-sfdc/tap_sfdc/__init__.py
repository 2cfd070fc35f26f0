"""tap-sfdc: Salesforce objects (SOQL, incremental on SystemModstamp) for the Salesforce → IFS direction."""
