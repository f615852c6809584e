"""Glue for frameworks: a LangChain Runnable (:mod:`.langchain`) and a ``@routed``
decorator (:mod:`.decorator`)."""

from adaptive_router.integrations.decorator import Routed, routed
from adaptive_router.integrations.langchain import as_runnable

__all__ = ["Routed", "as_runnable", "routed"]
