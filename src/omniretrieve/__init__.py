"""omniretrieve."""
