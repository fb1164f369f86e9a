"""fraudwatch's application: config, warehouse, the jobs and the CLI."""
