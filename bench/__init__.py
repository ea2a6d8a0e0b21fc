"""Godel's benchmark suite: figures against arq, RQ and bare redis-py, measured in one run.

Run `python -m bench [--quick]`; see bench/README.md.
"""
