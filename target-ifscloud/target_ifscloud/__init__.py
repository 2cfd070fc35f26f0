"""target-ifscloud: the one writer of records into IFS Cloud projections (field updates, creations, state actions)."""
