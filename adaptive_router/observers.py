"""Moved to :mod:`adaptive_router.observe.observers`; this name keeps old imports working.

The old name is made the same module object (not a copy), so that patching
``adaptive_router.observers.X`` in tests or applications still reaches the code that reads it.
"""

import sys

from adaptive_router.observe import observers as _moved
from adaptive_router.observe.observers import *  # noqa: F403

sys.modules[__name__] = _moved
