"""`python -m simulations.ope_coverage`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "ope_coverage")
