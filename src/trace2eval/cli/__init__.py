"""Command line: thin adapters over the library, one module per command."""
