"""Labs and checks for tests and benchmarks on the real kernel.

Reusable pieces, not tests: a lab builds namespaces and podnet components the way a test or a
benchmark needs them and removes them again; ``leaks`` tells what a test left behind. Nothing
in podnet's shells or libraries imports this package.
"""
