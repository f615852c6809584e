"""Moved to :mod:`adaptive_router.observe.alerts`; this name keeps old imports working.

The old name is made the same module object (not a copy), so that patching
``adaptive_router.alerts.X`` in tests or applications still reaches the code that reads it.
"""

import sys

from adaptive_router.observe import alerts as _moved
from adaptive_router.observe.alerts import *  # noqa: F403

sys.modules[__name__] = _moved
