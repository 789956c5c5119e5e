"""Reading what students hand in: trusted code reading files that student code wrote."""
