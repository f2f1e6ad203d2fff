"""Worker processes for the data plane (`--workers N`): the daemon and N-1 children serve together."""
