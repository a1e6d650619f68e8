"""What every package of the project shares, importing only the standard library: atomic writes."""
