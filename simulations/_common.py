"""`python -m simulations._common`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "_common")
