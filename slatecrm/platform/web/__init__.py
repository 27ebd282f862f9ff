"""The web layer: the JSON API now; pages, forms and the designer in later issues."""
