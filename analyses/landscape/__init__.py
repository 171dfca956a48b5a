"""Loss landscapes (Li et al. 2018): directions, grid evaluation, optimiser paths.

Entry point: :func:`analyses.landscape.api.landscape` returning a
:class:`analyses.landscape.result.LandscapeResult`.
"""
