"""The ``laicbench`` command line: one module per group of subcommands over the library."""
