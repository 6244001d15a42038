"""mlplab's benchmark suite (not part of the installed package). See bench/README.md."""
