"""`python -m simulations.cost_aware`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "cost_aware")
