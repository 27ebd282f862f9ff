"""The records service: the single path every record read and write takes."""
