"""Paths and routers from model names: :func:`provider_of`, :func:`model_path`,
:func:`router_from_models`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from adaptive_router.errors import ConfigurationError
from adaptive_router.paths import Path

if TYPE_CHECKING:
    from adaptive_router.router import Router

from adaptive_router.providers.anthropic import anthropic_path
from adaptive_router.providers.base import Prompt, check_model
from adaptive_router.providers.openai import openai_path

logger = logging.getLogger(__name__)

# -- paths from model names ------------------------------------------------------------
#: Model names served by OpenAI's chat completions API: gpt-4o, gpt-4.1-mini, gpt-5,
#: chatgpt-4o-latest, o1, o3-mini, o4-mini, and fine-tunes of those ("ft:gpt-4o-mini:...").
_OPENAI_MODEL = re.compile(r"(?:ft:)?(?:gpt-|chatgpt-|o\d+(?:$|[-:]))", re.IGNORECASE)
_ANTHROPIC_MODEL = re.compile(r"claude-", re.IGNORECASE)
_PROVIDER_PREFIXES = ("openai:", "anthropic:")


def provider_of(model: str) -> tuple[str, str]:
    """``(provider, model)`` for a model name: ``"openai"`` for ``gpt-*``, ``chatgpt-*``,
    ``o1``/``o3``/``o4``… (and ``ft:`` fine-tunes of them), ``"anthropic"`` for
    ``claude-*``. An explicit ``"openai:<model>"`` or ``"anthropic:<model>"`` names the
    provider of any other model (e.g. one served by an OpenAI-compatible server).

    Raises ``ValueError`` for a name it cannot place.
    """
    name = check_model(model)
    for prefix in _PROVIDER_PREFIXES:
        if name.lower().startswith(prefix):
            rest = check_model(name[len(prefix) :])
            return prefix[:-1], rest
    if _OPENAI_MODEL.match(name):
        return "openai", name
    if _ANTHROPIC_MODEL.match(name):
        return "anthropic", name
    raise ValueError(
        f"cannot tell which provider serves model {name!r}: OpenAI models start with "
        "'gpt-', 'chatgpt-' or 'o1'/'o3'/'o4', Anthropic models with 'claude-'; name the "
        f"provider explicitly ('openai:{name}' for an OpenAI-compatible server, "
        f"'anthropic:{name}') or build the path with openai_path/anthropic_path"
    )


def model_path(
    model: str,
    prompt: Prompt,
    *,
    clients: Mapping[str, Any] | None = None,
    async_clients: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """:func:`openai_path` or :func:`anthropic_path` for ``model``, by its name (see
    :func:`provider_of`).

    ``clients`` / ``async_clients`` map ``"openai"`` and ``"anthropic"`` to SDK clients
    (missing ones are created from the environment on first use); other keyword
    arguments go to the path builder (``schema=``, ``timeout=``, ``repair=``,
    ``temperature=``…).
    """
    provider, name = provider_of(model)
    build = openai_path if provider == "openai" else anthropic_path
    for what, given in (("clients", clients), ("async_clients", async_clients)):
        unknown = sorted(set(given or {}) - {"openai", "anthropic"})
        if unknown:
            raise ConfigurationError(
                f"{what} keys must be 'openai' and/or 'anthropic', got {unknown}"
            )
    kwargs.setdefault("client", (clients or {}).get(provider))
    kwargs.setdefault("async_client", (async_clients or {}).get(provider))
    return build(name, prompt, **kwargs)


def _not_none(value: Any) -> bool:
    return value is not None


def router_from_models(
    models: Sequence[str | Path],
    prompt: Prompt,
    schema: Any = None,
    success_fn: Callable[[Any], Any] | None = None,
    *,
    task: str,
    clients: Mapping[str, Any] | None = None,
    async_clients: Mapping[str, Any] | None = None,
    system: str | None = None,
    timeout: float | None = 30.0,
    repair: bool | int = False,
    expected_tokens: tuple[int, int] | None = None,
    price_each_request: bool = False,
    path_options: Mapping[str, Mapping[str, Any]] | None = None,
    **router_kwargs: Any,
) -> Router:
    """A :class:`~adaptive_router.router.Router` over provider paths built from model names.

    ::

        router = router_from_models(
            ["gpt-4o", "claude-sonnet-4-6"],
            prompt="Extract the order as JSON: {text}",
            schema=Order,
            task="order-extraction",
        )
        order = router.run(text="2x widget to Berlin")

    Each name becomes :func:`openai_path` or :func:`anthropic_path` (chosen by
    :func:`provider_of`; ``"openai:<model>"`` / ``"anthropic:<model>"`` name the provider
    of any other model) with the same ``prompt``, ``schema``, ``system``, ``timeout``,
    ``repair``, ``expected_tokens`` (the tokens a request is expected to use, which
    each path's model is priced for as its cost prior before it has data) and
    ``price_each_request`` (price each request by its own prompt; both: see
    :func:`openai_path`); ``path_options`` adds keyword arguments per model name (``{"gpt-4o":
    {"temperature": 0.2}, "claude-sonnet-4-6": {"max_tokens": 2000}}``). A
    :class:`~adaptive_router.paths.Path` in ``models`` is used as it is.

    ``clients`` / ``async_clients`` map ``"openai"`` and ``"anthropic"`` to SDK clients
    (e.g. pointed at a proxy or a test server); missing ones come from the environment.
    ``success_fn`` defaults to "the (validated) result is not None" unless
    ``score_fn=`` is given. Other keyword arguments go to ``Router`` (``store=``,
    ``fallback=``, ``half_life=``, ``learning=``…); ``timeout`` is the built paths' own.
    """
    from adaptive_router.router import Router

    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence) or not models:
        raise ConfigurationError(
            "models must be a non-empty list of model names such as ['gpt-4o', 'claude-sonnet-4-6']"
        )
    options = dict(path_options or {})
    names = {m for m in models if isinstance(m, str)}
    unused = sorted(set(options) - names)
    if unused:
        raise ConfigurationError(f"path_options names models not in models: {unused}")
    paths: list[Path] = []
    for model in models:
        if isinstance(model, Path):
            paths.append(model)
            continue
        if not isinstance(model, str):
            raise ConfigurationError(
                f"models must hold model names (str) or Path objects, got {model!r}"
            )
        kwargs: dict[str, Any] = {
            "schema": schema,
            "system": system,
            "timeout": timeout,
            "repair": repair,
            "expected_tokens": expected_tokens,
            "price_each_request": price_each_request,
            **options.get(model, {}),
        }
        paths.append(
            model_path(model, prompt, clients=clients, async_clients=async_clients, **kwargs)
        )
    if success_fn is None and router_kwargs.get("score_fn") is None:
        success_fn = _not_none
    return Router(paths, success_fn, task, **router_kwargs)
