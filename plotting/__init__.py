"""The pictures: one module per Result type; each function takes a Result, returns a Figure."""
