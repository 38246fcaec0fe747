"""Names and rules shared by every package: the bottom of the dependency graph.

Nothing here imports another package of the project. Splits, signature and
tensor names, config keys, the serving directory layout and the pair hash live
here once, so the components, the model code, the client and the pipeline
cannot drift apart.
"""
