"""Tools built on the engine and the driver: the command line, diagrams, the demo, the bench.

Nothing in the engine or the driver imports from here.
"""
