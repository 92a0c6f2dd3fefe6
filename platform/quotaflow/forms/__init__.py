"""Generated forms: typed values, computed fields, visibility, requiredness and rules."""
