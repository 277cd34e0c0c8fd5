"""An example rlkit plugin. Copy this package to start your own."""
