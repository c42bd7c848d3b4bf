"""Benchmarks and long soaks: run each from the repository root as ``python -m bench.NAME``.

Importing a module here runs nothing; each bench runs from its ``main()``. Results go to
bench/RESULTS.md with the date and the machine.
"""
