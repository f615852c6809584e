"""`python -m simulations.peers`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "peers")
