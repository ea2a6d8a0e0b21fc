"""The Redis side: the only package that imports redis."""
