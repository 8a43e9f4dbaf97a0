"""Read models built from the event store: who paid, fee reports, the finance
event log, and the runner and rebuild that keep them (docs/projections.md)."""
