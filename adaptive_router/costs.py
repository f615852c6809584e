"""Moved to :mod:`adaptive_router.observe.costs`; this name keeps old imports working.

The old name is made the same module object (not a copy), so that patching
``adaptive_router.costs.X`` in tests or applications still reaches the code that reads it.
"""

import sys

from adaptive_router.observe import costs as _moved
from adaptive_router.observe.costs import *  # noqa: F403

sys.modules[__name__] = _moved
