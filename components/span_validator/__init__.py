"""ExampleValidator that also checks a span against the previous span (drift)."""
