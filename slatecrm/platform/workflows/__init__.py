"""Running workflows: the outbox the write pipeline fills, the jobs workers claim, the actions
they carry out and the run log (docs/workflows.md)."""
