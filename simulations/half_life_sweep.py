"""`python -m simulations.half_life_sweep`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "half_life_sweep")
