"""One module per framework; each runs as its own process and prints one JSON object."""
