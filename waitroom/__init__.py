"""waitroom package."""
