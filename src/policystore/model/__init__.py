"""The pure domain model: value types and rules, no I/O, no clock, no event loop."""
