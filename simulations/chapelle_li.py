"""`python -m simulations.chapelle_li`: runs the packaged experiment (see __init__)."""

from simulations._shim import forward

forward(__name__, "chapelle_li")
