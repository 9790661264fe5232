"""Sessions: a folder of state files, a task plan, and a runner that does one task at a time."""
