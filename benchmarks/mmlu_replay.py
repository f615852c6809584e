"""MMLU replay: routing between GPT-4 and Mixtral on real per-question outcomes.

    .venv/bin/python -m benchmarks.mmlu_replay                # everything (~40 min on 2 cores)
    .venv/bin/python -m benchmarks.mmlu_replay --seeds 3 --quick   # a smoke run
    .venv/bin/python -m benchmarks.mmlu_replay --only text,subject-context

Data: ``benchmarks/data/routellm-mmlu`` (RouteLLM's MMLU responses, Apache-2.0; see the
NOTICE there): 14,042 questions, each answered by GPT-4-1106 (80.6% correct) and
Mixtral-8x7B (68.1%). A replay is a shuffled pass over all of them, one attempt per
question: the policy picks a model, the reward is that model's stored correctness, the
cost is the call's price under the cost model below. Policies learn online from scratch.

Cost model: list prices, GPT-4-1106 $10 per million input tokens and $30 per million
output tokens, Mixtral-8x7B $0.60 and $0.60; input tokens = ceil(characters / 4) of the
prompt (OpenAI's rule of thumb for English; no tokenizer is a dependency), one output
token (the answer letter). A GPT-4 call costs $1.2 per thousand questions at the median
length, ~17x Mixtral's.

Spend target: every learning policy runs under ``target_usd_per_request = B``
(:class:`~adaptive_router.policies.pacing.SpendPacer`), choosing by ``θ - λ·c`` with c the
path's learned mean cost per call. Which share of calls goes to GPT-4 at a given B depends
on the policy (GPT-4's cost varies with the prompt's length, and a policy that knows which
questions need GPT-4 buys different ones), so B is calibrated per policy, by bisection on
calibration shuffles that are not among the reported ones, to land near 50% GPT-4 share.
The reported shuffles then run at that B and at a second B whose mean share is on the
other side of 50% (:func:`bracket`), and the figures at exactly 50% interpolate: each
shuffle's two runs weighted so that the mean shares meet 50% (:meth:`Row.at_share`).

Reported per policy over ``--seeds`` shuffles (mean and 95% t-interval): the two targets
and the GPT-4 share at each; accuracy and PGR = (accuracy - Mixtral's) / (GPT-4's -
Mixtral's) at 50% share; realized spend per question over questions 2,001.. / B, and the
same over the whole pass (both targets' runs). Hindsight oracles (per
subject and per question, at exactly 50% share) bound what routing can recover.

The policies are policy objects driven directly (a :class:`Chooser` each) and, for the
``router-*`` ones, the live Router (:class:`RouterChooser`: ``choose`` →
``Router.choose``, ``report`` → ``Router.report`` on ``memory://``) with the same loop,
so the two can be compared: ``--only task,router-task,subject-context,...``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sstats

from adaptive_router.features import DEFAULT_DIM, SparseVector, hash_features, text_features
from adaptive_router.policies.contextual import ContextualThompsonSampling, LinearModel, with_bias
from adaptive_router.policies.pacing import DEFAULT_GAIN, SpendPacer, paced_costs
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.simulation.contextual import Requests
from adaptive_router.simulation.contextual import replay as simulate
from benchmarks.common import ROOT, machine

DATA = ROOT / "benchmarks" / "data" / "routellm-mmlu" / "mmlu_gpt4_mixtral.csv.gz"
RESULTS = ROOT / "benchmarks" / "results-mmlu.md"
MODELS = ("gpt-4-1106", "mixtral-8x7b")
#: USD per token (input, output): list prices per million / 1e6.
PRICES = ((10e-6, 30e-6), (0.6e-6, 0.6e-6))
CHARS_PER_TOKEN = 4
OUTPUT_TOKENS = 1
#: Questions whose spend is not judged: the price needs a start-up period.
WARMUP = 2000
#: Shuffles used to calibrate the spend targets (never reported). Four: with two, the
#: calibrated share missed 50% by up to 3 points on the reported shuffles, which moves a
#: policy's PGR by about as much.
CALIBRATION_SEEDS = (10_001, 10_002, 10_003, 10_004)
TARGET_SHARE = 0.5
#: The linear policies' hashed dimension and posterior variance scale in the report.
DIM = DEFAULT_DIM
VARIANCE_SCALE = 0.1

FloatArray = NDArray[np.float64]
#: The questions' order in one pass: a shuffle's index array, or a list in the tests.
Order = Sequence[int] | NDArray[np.intp]


@dataclass(frozen=True)
class Questions:
    """The replayed questions: ``correct[i, k]`` and ``cost[i, k]`` for model k (0 = GPT-4,
    1 = Mixtral)."""

    subject: list[str]
    prompt: list[str]
    correct: FloatArray
    cost: FloatArray

    def __len__(self) -> int:
        return len(self.prompt)

    def take(self, rows: Sequence[int]) -> Questions:
        """A subset (e.g. a slice for a test)."""
        r = np.asarray(rows, dtype=np.intp)
        return Questions(
            [self.subject[i] for i in r], [self.prompt[i] for i in r], self.correct[r], self.cost[r]
        )


def call_cost(prompt: str, model: int) -> float:
    """One call's price in USD under the stated cost model."""
    tokens_in = math.ceil(len(prompt) / CHARS_PER_TOKEN)
    p_in, p_out = PRICES[model]
    return tokens_in * p_in + OUTPUT_TOKENS * p_out


#: ``tokens``: each call priced by its own prompt (the report's cost model). ``flat``:
#: every call of a model costs that model's mean over the data set, so GPT-4's share of
#: calls and spend move together and "PGR at 50% share" reads routing quality alone (a
#: router that prices each subject's calls by their own length buys GPT-4 where it is
#: cheap, which a share cannot credit).
COST_MODELS = ("tokens", "flat")


def load_questions(path: FsPath = DATA, cost_model: str = "tokens") -> Questions:
    """All rows of the data file, calls priced under ``cost_model`` (:data:`COST_MODELS`)."""
    if cost_model not in COST_MODELS:
        raise ValueError(f"cost_model must be one of {COST_MODELS}, got {cost_model!r}")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    prompts = [r["prompt"] for r in rows]
    correct = np.array(
        [[float(r["gpt_4_1106_correct"]), float(r["mixtral_8x7b_correct"])] for r in rows]
    )
    cost = np.array([[call_cost(p, 0), call_cost(p, 1)] for p in prompts])
    if cost_model == "flat":
        cost = np.broadcast_to(cost.mean(axis=0), cost.shape).copy()
    return Questions([r["subject"] for r in rows], prompts, correct, cost)


# -- policies ---------------------------------------------------------------------------
class Chooser(Protocol):
    """One routing policy under replay: pick a model for question i, learn its outcome."""

    def choose(self, i: int, at: float) -> int: ...

    def report(self, i: int, path: int, reward: float, cost: float, at: float) -> None: ...


class RandomMix:
    """GPT-4 with probability ``share``, else Mixtral: the no-information baseline."""

    def __init__(self, share: float, rng: np.random.Generator) -> None:
        self.share, self.rng = share, rng

    def choose(self, i: int, at: float) -> int:
        return 0 if self.rng.random() < self.share else 1

    def report(self, i: int, path: int, reward: float, cost: float, at: float) -> None:
        return None


@dataclass
class _Evidence:
    """Beta evidence and mean cost per path for one context, as the Router keeps them."""

    successes: FloatArray = field(default_factory=lambda: np.zeros(2))
    failures: FloatArray = field(default_factory=lambda: np.zeros(2))
    cost_sum: FloatArray = field(default_factory=lambda: np.zeros(2))

    def add(self, path: int, reward: float, cost: float) -> None:
        self.successes[path] += reward
        self.failures[path] += 1.0 - reward
        self.cost_sum[path] += cost

    def mean_costs(self) -> list[float | None]:
        n = self.successes + self.failures
        return [float(c / m) if m > 0 else None for c, m in zip(self.cost_sum, n, strict=True)]


#: :class:`PacedBeta`'s ways of turning a path's Beta posterior into its θ.
DRAWS = ("thompson", "optimistic", "upper")


class PacedBeta:
    """The non-contextual router: :class:`ThompsonSampling` θ draws, ranked by θ - λ·c.

    With ``contexts`` (one name per question) the evidence is per named context, the
    task-level evidence acting as a prior scaled to at most ``prior_strength``
    pseudo-observations per path, as the Router does for ``context=``; the cost in the
    spend term is the context's mean cost per call (the task's until the context has
    one), or with ``context_costs=False`` the task's.

    ``draw`` is how θ comes from each path's Beta posterior: ``"thompson"`` (a draw, as
    the Router), ``"optimistic"`` (a draw, raised to the posterior mean when below it:
    optimistic Thompson Sampling) or ``"upper"`` (the mean plus two posterior standard
    deviations, no draw: a deterministic yardstick, not a Thompson policy, whose
    choices have no propensities for ``evaluate()``). The Router draws only ``"thompson"``;
    the others measure how much a different use of the same posterior would move PGR.
    """

    def __init__(
        self,
        pacer: SpendPacer,
        rng: np.random.Generator,
        contexts: Sequence[str] | None = None,
        prior_strength: float = 10.0,
        explore: float = 0.02,
        context_costs: bool = True,
        draw: str = "thompson",
    ) -> None:
        if draw not in DRAWS:
            raise ValueError(f"draw must be one of {DRAWS}, got {draw!r}")
        self.ts = ThompsonSampling(explore=explore)
        self.pacer, self.rng, self.contexts = pacer, rng, contexts
        self.prior_strength = prior_strength
        self.context_costs = context_costs
        self.draw = draw
        self.task = _Evidence()
        self.by_context: dict[str, _Evidence] = {}

    def _evidence(self, i: int) -> tuple[FloatArray, FloatArray, list[float | None]]:
        task = self.task
        if self.contexts is None:
            return task.successes, task.failures, task.mean_costs()
        own = self.by_context.setdefault(self.contexts[i], _Evidence())
        n = task.successes + task.failures
        scale = np.where(n > self.prior_strength, self.prior_strength / np.maximum(n, 1e-300), 1.0)
        means = task.mean_costs()
        if self.context_costs:
            means = [
                o if o is not None else t for o, t in zip(own.mean_costs(), means, strict=True)
            ]
        return task.successes * scale + own.successes, task.failures * scale + own.failures, means

    def _theta(self, s: FloatArray, f: FloatArray) -> FloatArray:
        if self.draw == "thompson":
            return self.ts.sample(s, f, self.rng)
        a, b = self.ts.prior[0] + s, self.ts.prior[1] + f
        mean = a / (a + b)
        if self.draw == "optimistic":
            return np.maximum(self.ts.sample(s, f, self.rng), mean)
        return mean + 2.0 * np.sqrt(mean * (1.0 - mean) / (a + b + 1.0))

    def choose(self, i: int, at: float) -> int:
        s, f, means = self._evidence(i)
        theta = self._theta(s, f) - self.pacer.price * np.array(paced_costs(means))
        if self.ts.explore > 0.0 and self.rng.random() < self.ts.explore:
            return int(self.rng.integers(0, 2))
        return int(np.argmax(theta))

    def report(self, i: int, path: int, reward: float, cost: float, at: float) -> None:
        self.task.add(path, reward, cost)
        if self.contexts is not None:
            self.by_context[self.contexts[i]].add(path, reward, cost)
        self.pacer.observe(cost, at)


class PacedLinear:
    """Contextual Thompson Sampling on hashed features, ranked by S - λ·c; the bias cold
    starts from the path's Beta evidence (which sees the same outcomes, so it is counted
    once), as the Router will keep both."""

    def __init__(
        self,
        policy: ContextualThompsonSampling,
        vectors: Sequence[SparseVector],
        pacer: SpendPacer,
        rng: np.random.Generator,
    ) -> None:
        self.policy, self.vectors, self.pacer, self.rng = policy, vectors, pacer, rng
        self.model: LinearModel = policy.new_model(2)
        self.evidence = _Evidence()

    def choose(self, i: int, at: float) -> int:
        costs = paced_costs(self.evidence.mean_costs())
        decision = self.policy.rank(self.model, self.vectors[i], self.rng, costs, self.pacer.price)
        return int(decision.order[0])

    def report(self, i: int, path: int, reward: float, cost: float, at: float) -> None:
        idx, val = with_bias(self.vectors[i], self.policy.dim)
        self.model.observe(path, idx, val, reward, at)
        ev = self.evidence
        ev.add(path, reward, cost)
        self.model.cold_start(path, float(ev.successes[path]), float(ev.failures[path]))
        self.pacer.observe(cost, at)


class RouterChooser:
    """The live :class:`~adaptive_router.Router` as a :class:`Chooser`: ``choose`` is
    ``Router.choose`` (with the subject as ``context=``, or the question's text for a
    ``features=text_features(dim)`` router), ``report`` is ``Router.report`` with the
    stored correctness and the call's cost; on ``memory://`` under
    ``Objective(target_usd_per_request=target)``, its clock the question's position. The
    paths are never called (``choose``/``report`` only). A ``*-priced`` mode gives each
    path its model, the model's list price (``Observability(prices=...)``) and
    ``expected_tokens`` counted from the question's prompt as ``price_each_request=True``
    counts a provider path's (:class:`PromptTokens`: the cost model's tokens plus 4
    for the message), so the spend term prices each call instead of the path's mean."""

    def __init__(
        self,
        q: Questions,
        target: float,
        rng: np.random.Generator,
        mode: str,
        dim: int = DIM,
    ) -> None:
        from adaptive_router import Learning, Objective, Observability, Path, Router
        from adaptive_router.features import text_features
        from adaptive_router.providers.request_tokens import PromptTokens

        self.q, self.now = q, 0.0
        self.priced = mode.endswith("-priced")
        self.mode = mode.removesuffix("-priced")

        # The request an openai_path with the template "{0}" sends for a question.
        tokens = PromptTokens(
            lambda args, kwargs: {"messages": [{"role": "user", "content": args[0]}]},
            OUTPUT_TOKENS,
        )

        self.router = Router(
            [
                Path(lambda: None, name=m, model=m, expected_tokens=tokens if self.priced else None)
                for m in MODELS
            ],
            bool,
            "mmlu",
            store="memory://",
            objective=Objective(target_usd_per_request=target),
            features=text_features(dim) if self.mode == "text" else None,
            learning=Learning(seed=rng, clock=lambda: self.now),
            observability=Observability(
                metrics=False,
                capture_usage=False,
                heartbeat=None,
                # USD per million tokens, as the cost model charges.
                prices={
                    m: (p_in * 1e6, p_out * 1e6)
                    for m, (p_in, p_out) in zip(MODELS, PRICES, strict=True)
                },
            ),
        )
        self.index = {m: k for k, m in enumerate(MODELS)}
        self.pending = ""

    def choose(self, i: int, at: float) -> int:
        self.now = at
        # A priced router gets the prompt as the request's argument, whatever it ranks by.
        args = (self.q.prompt[i],) if self.mode == "text" or self.priced else ()
        if self.mode == "subject-context":
            d = self.router.choose(*args, context=self.q.subject[i])
        else:
            d = self.router.choose(*args)
        self.pending = d.request_id
        return self.index[d.path]

    def report(self, i: int, path: int, reward: float, cost: float, at: float) -> None:
        self.now = at
        self.router.report(self.pending, reward == 1.0, cost_usd=cost)


# -- features ----------------------------------------------------------------------------
def text_vectors(q: Questions, dim: int, ngrams: Sequence[int] = (1,)) -> list[SparseVector]:
    """``text_features(dim, ngrams)`` of every prompt, hashed."""
    f = text_features(dim=dim, ngrams=ngrams)
    return [hash_features(f(p), dim) for p in q.prompt]


def subject_vectors(
    q: Questions, dim: int, text: bool, ngrams: Sequence[int] = (1,)
) -> list[SparseVector]:
    """The subject as an indicator feature (``{"subject": name}``), with or without the
    text's features."""
    f = text_features(dim=dim, ngrams=ngrams)
    out = []
    for p, s in zip(q.prompt, q.subject, strict=True):
        feats: dict[str, float | str] = dict(f(p)) if text else {}
        feats["subject"] = s
        out.append(hash_features(feats, dim))
    return out


# -- one replay --------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One shuffle's figures (spend as a ratio to the target) and its choices in order."""

    accuracy: float
    share: float
    spend_after_warmup: float
    spend_total: float
    picks: NDArray[np.intp] = field(compare=False, repr=False)


def replay(q: Questions, order: Order, chooser: Chooser, target: float) -> Run:
    """One attempt per question in ``order``; spend figures are ratios to ``target``; the
    clock is the question's position in the pass."""
    n = len(order)
    picks = np.empty(n, dtype=np.intp)
    for t, i in enumerate(order):
        k = chooser.choose(int(i), float(t))
        picks[t] = k
        chooser.report(int(i), k, float(q.correct[i, k]), float(q.cost[i, k]), float(t))
    return summarise(q, order, picks, target)


def summarise(q: Questions, order: Order, picks: NDArray[np.intp], target: float) -> Run:
    """A pass's figures from its choices (``picks[t]`` for question ``order[t]``)."""
    n = len(order)
    rows = np.asarray(order, dtype=np.intp)
    reward = q.correct[rows, picks]
    spend = q.cost[rows, picks]
    warm = min(WARMUP, n // 2)
    return Run(
        accuracy=float(reward.mean()),
        share=float(np.mean(picks == 0)),
        spend_after_warmup=float(spend[warm:].mean() / target),
        spend_total=float(spend.mean() / target),
        picks=picks,
    )


# -- the policies of the report ----------------------------------------------------------
@dataclass(frozen=True)
class PolicySpec:
    """A reported policy: how to build its chooser for a target and a generator, and
    (``compiled``) how to run a whole pass in the simulator instead."""

    name: str
    label: str
    build: Callable[[Questions, float, np.random.Generator], Chooser]
    paced: bool = True
    compiled: Callable[[Questions, float, int], Run] | None = None


def _linear(
    vectors: Callable[[Questions], Sequence[SparseVector]], dim: int, variance_scale: float
) -> tuple[
    Callable[[Questions, float, np.random.Generator], Chooser],
    Callable[[Questions, float, int], Run],
]:
    """A :class:`PacedLinear` builder and the same policy's compiled pass (the simulator's
    :func:`~adaptive_router.simulation.contextual.replay`: the policy objects' decisions
    for the same generator, tests/test_simulation_contextual.py); the feature vectors are
    computed once per data set."""
    cache: dict[int, tuple[Sequence[SparseVector], Requests]] = {}

    def vecs(q: Questions) -> Sequence[SparseVector]:
        if id(q) not in cache:
            cache.clear()
            v = vectors(q)
            cache[id(q)] = (v, Requests.of(v, dim))
        return cache[id(q)][0]

    def policy() -> ContextualThompsonSampling:
        return ContextualThompsonSampling(dim=dim, variance_scale=variance_scale)

    def build(q: Questions, target: float, rng: np.random.Generator) -> Chooser:
        return PacedLinear(policy(), vecs(q), SpendPacer(target), rng)

    def compiled(q: Questions, target: float, seed: int) -> Run:
        order = shuffle(len(q), seed)
        vecs(q)
        res = simulate(
            policy(),
            cache[id(q)][1],
            q.correct,
            q.cost,
            rng=compiled_rng(seed),
            order=order,
            target_usd_per_request=target,
            engine="numba",
        )
        return summarise(q, order, res.choices, target)

    return build, compiled


def compiled_rng(seed: int) -> np.random.Generator:
    """The policy's generator for shuffle ``seed`` in a compiled pass (SFC64, which the
    compiled kernel reproduces; the objects' passes use ``default_rng([seed, 1])``)."""
    return np.random.Generator(np.random.SFC64([seed, 1]))


def policies(dim: int, variance_scale: float) -> dict[str, PolicySpec]:
    """The reported policies, by short name."""

    def lin(
        name: str, label: str, vectors: Callable[[Questions], Sequence[SparseVector]]
    ) -> PolicySpec:
        build, compiled = _linear(vectors, dim, variance_scale)
        return PolicySpec(name, label, build, compiled=compiled)

    return {
        "random": PolicySpec(
            "random", "random mix", lambda q, b, rng: RandomMix(TARGET_SHARE, rng), paced=False
        ),
        "task": PolicySpec(
            "task", "non-contextual TS (Beta)", lambda q, b, rng: PacedBeta(SpendPacer(b), rng)
        ),
        "subject-context": PolicySpec(
            "subject-context",
            "subject as named context (Beta)",
            lambda q, b, rng: PacedBeta(SpendPacer(b), rng, contexts=q.subject),
        ),
        "subject-context-task-cost": PolicySpec(
            "subject-context-task-cost",
            "subject as named context (Beta), task-level cost in the spend term",
            lambda q, b, rng: PacedBeta(
                SpendPacer(b), rng, contexts=q.subject, context_costs=False
            ),
        ),
        # The same posteriors used differently (prior strength 1, no exploration floor):
        # how far the subject row is from what per-subject learning can do online.
        "subject-context-strength-1": PolicySpec(
            "subject-context-strength-1",
            "subject as named context (Beta), prior strength 1, no exploration floor",
            lambda q, b, rng: PacedBeta(
                SpendPacer(b), rng, contexts=q.subject, prior_strength=1.0, explore=0.0
            ),
        ),
        "subject-context-optimistic": PolicySpec(
            "subject-context-optimistic",
            "subject as named context, optimistic Thompson draws, prior strength 1, no floor",
            lambda q, b, rng: PacedBeta(
                SpendPacer(b),
                rng,
                contexts=q.subject,
                prior_strength=1.0,
                explore=0.0,
                draw="optimistic",
            ),
        ),
        "subject-context-upper": PolicySpec(
            "subject-context-upper",
            "subject as named context, mean + 2 sd (deterministic, no propensities), no prior",
            lambda q, b, rng: PacedBeta(
                SpendPacer(b),
                rng,
                contexts=q.subject,
                prior_strength=0.0,
                explore=0.0,
                draw="upper",
            ),
        ),
        "subject-feature": lin(
            "subject-feature",
            "subject as a feature (Gaussian)",
            lambda q: subject_vectors(q, dim, text=False),
        ),
        "text": lin("text", "text_features()", lambda q: text_vectors(q, dim)),
        "text-pairs": lin(
            "text-pairs",
            "text_features(ngrams=(1, 2)): words and word pairs",
            lambda q: text_vectors(q, dim, ngrams=(1, 2)),
        ),
        "router-task": PolicySpec(
            "router-task",
            "live Router, no context (choose/report on memory://)",
            lambda q, b, rng: RouterChooser(q, b, rng, "task", dim),
        ),
        "router-subject-context": PolicySpec(
            "router-subject-context",
            "live Router, subject as context= (choose/report on memory://)",
            lambda q, b, rng: RouterChooser(q, b, rng, "subject-context", dim),
        ),
        "router-text": PolicySpec(
            "router-text",
            "live Router, features=text_features() (choose/report on memory://)",
            lambda q, b, rng: RouterChooser(q, b, rng, "text", dim),
        ),
        "router-subject-context-priced": PolicySpec(
            "router-subject-context-priced",
            "live Router, subject as context=, each call priced by its prompt "
            "(Path(expected_tokens=fn), as price_each_request=True)",
            lambda q, b, rng: RouterChooser(q, b, rng, "subject-context-priced", dim),
        ),
        "router-text-priced": PolicySpec(
            "router-text-priced",
            "live Router, features=text_features(), each call priced by its prompt "
            "(Path(expected_tokens=fn), as price_each_request=True)",
            lambda q, b, rng: RouterChooser(q, b, rng, "text-priced", dim),
        ),
        "subject+text": lin(
            "subject+text",
            "subject + text_features()",
            lambda q: subject_vectors(q, dim, text=True),
        ),
    }


def shuffle(n: int, seed: int) -> NDArray[np.intp]:
    """The question order of shuffle ``seed`` (the same for every policy)."""
    return np.random.default_rng([seed, 0]).permutation(n)


#: Run the linear policies' passes compiled (the simulator) when numba is installed;
#: ``--objects`` (or False here) replays them through the policy objects instead.
USE_COMPILED = importlib.util.find_spec("numba") is not None


def run_one(q: Questions, spec: PolicySpec, target: float, seed: int) -> Run:
    """Policy ``spec`` under ``target`` on shuffle ``seed`` (its own generator)."""
    if spec.compiled is not None and USE_COMPILED:
        return spec.compiled(q, target, seed)
    rng = np.random.default_rng([seed, 1])
    return replay(q, shuffle(len(q), seed), spec.build(q, target, rng), target)


# -- hindsight oracles -------------------------------------------------------------------
def oracle_by_subject(q: Questions, share: float = TARGET_SHARE) -> float:
    """Accuracy of the best per-subject assignment sending ``share`` of the questions to
    GPT-4: subjects by GPT-4's advantage, best first, the last one split."""
    subjects = sorted(set(q.subject))
    idx = {s: i for i, s in enumerate(subjects)}
    rows = np.array([idx[s] for s in q.subject])
    n = np.bincount(rows, minlength=len(subjects)).astype(float)
    gain = np.bincount(rows, q.correct[:, 0] - q.correct[:, 1], minlength=len(subjects))
    budget = share * len(q)
    acc = float(q.correct[:, 1].sum())
    for s in np.argsort(-gain / n, kind="stable"):
        if budget <= 0 or gain[s] <= 0:
            break
        take = min(1.0, budget / n[s])
        acc += take * gain[s]
        budget -= take * n[s]
    return acc / len(q)


def _allocate_by_subject(q: Questions, score: FloatArray, share: float) -> float:
    """Accuracy when subjects go to GPT-4 in descending ``score`` until ``share`` of the
    questions do (the last one split), each subject worth its true gain."""
    subjects = sorted(set(q.subject))
    idx = {s: i for i, s in enumerate(subjects)}
    rows = np.array([idx[s] for s in q.subject])
    n = np.bincount(rows, minlength=len(subjects)).astype(float)
    gain = np.bincount(rows, q.correct[:, 0] - q.correct[:, 1], minlength=len(subjects))
    budget = share * len(q)
    acc = float(q.correct[:, 1].sum())
    for s in np.argsort(-score, kind="stable"):
        if budget <= 0:
            break
        take = min(1.0, budget / n[s])
        acc += take * gain[s]
        budget -= take * n[s]
    return acc / len(q)


def oracle_by_subject_estimated(
    q: Questions, outcomes: int, draws: int = 50, share: float = TARGET_SHARE, seed: int = 0
) -> tuple[float, float]:
    """What knowing each subject's gain only as well as ``outcomes`` outcomes per model
    tell it is worth: the per-subject oracle's allocation by gains estimated from that
    many random questions per model and subject (mean and sd of the accuracy over
    ``draws``), those outcomes free. An online policy sees one model's outcome per
    question and MMLU's subjects have ~250 questions each; the hindsight oracle knows all
    of both models'."""
    subjects = sorted(set(q.subject))
    by_subject = [np.flatnonzero(np.array(q.subject) == s) for s in subjects]
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(draws):
        est = np.array(
            [
                q.correct[rng.choice(r, min(outcomes, r.size), replace=False), 0].mean()
                - q.correct[rng.choice(r, min(outcomes, r.size), replace=False), 1].mean()
                for r in by_subject
            ]
        )
        accs.append(_allocate_by_subject(q, est, share))
    return float(np.mean(accs)), float(np.std(accs))


def oracle_by_subject_spend(q: Questions, budget: float) -> float:
    """Accuracy of the best per-subject assignment spending ``budget`` per question on
    average: subjects by GPT-4's gain per extra dollar, best first, the last one split
    (a fractional knapsack). The spend target's own yardstick: where GPT-4's price varies
    by subject, the best use of the money is not the best use of a share of the calls."""
    subjects = sorted(set(q.subject))
    idx = {s: i for i, s in enumerate(subjects)}
    rows = np.array([idx[s] for s in q.subject])
    gain = np.bincount(rows, q.correct[:, 0] - q.correct[:, 1], minlength=len(subjects))
    extra = np.bincount(rows, q.cost[:, 0] - q.cost[:, 1], minlength=len(subjects))
    money = budget * len(q) - float(q.cost[:, 1].sum())  # beyond Mixtral for everything
    acc = float(q.correct[:, 1].sum())
    for s in np.argsort(-gain / extra, kind="stable"):
        if money <= 0 or gain[s] <= 0:
            break
        take = min(1.0, money / extra[s])
        acc += take * gain[s]
        money -= take * extra[s]
    return acc / len(q)


def oracle_by_question(q: Questions, share: float = TARGET_SHARE) -> float:
    """Accuracy of the best per-question assignment with ``share`` of them to GPT-4."""
    gain = np.sort(q.correct[:, 0] - q.correct[:, 1])[::-1]
    top = gain[: round(share * len(q))]
    return float((q.correct[:, 1].sum() + top[top > 0].sum()) / len(q))


# -- calibration and report --------------------------------------------------------------
def mix_budget(q: Questions, share: float = TARGET_SHARE) -> float:
    """Spend per question of a random mix with ``share`` of calls to GPT-4."""
    return float(share * q.cost[:, 0].mean() + (1.0 - share) * q.cost[:, 1].mean())


def calibrate(
    q: Questions,
    spec: PolicySpec,
    seeds: Sequence[int] = CALIBRATION_SEEDS,
    tolerance: float = 0.01,
    max_rounds: int = 8,
) -> tuple[float, float]:
    """The target at which ``spec`` sends ``TARGET_SHARE`` of calls to GPT-4 (mean over the
    calibration ``seeds``), by regula falsi on share against log(target); returns (target,
    share there)."""

    def share_at(b: float) -> float:
        return float(np.mean([run_one(q, spec, b, s).share for s in seeds]))

    b0 = mix_budget(q)
    lo, hi = (0.6 * b0, share_at(0.6 * b0)), (1.4 * b0, share_at(1.4 * b0))
    while lo[1] > TARGET_SHARE and lo[0] > b0 / 20:
        lo = (lo[0] / 1.5, share_at(lo[0] / 1.5))
    while hi[1] < TARGET_SHARE and hi[0] < b0 * 20:
        hi = (hi[0] * 1.5, share_at(hi[0] * 1.5))
    best = min(lo, hi, key=lambda p: abs(p[1] - TARGET_SHARE))
    for _ in range(max_rounds):
        if abs(best[1] - TARGET_SHARE) <= tolerance or hi[1] == lo[1]:
            break
        frac = (TARGET_SHARE - lo[1]) / (hi[1] - lo[1])
        b = math.exp(math.log(lo[0]) + min(max(frac, 0.1), 0.9) * math.log(hi[0] / lo[0]))
        point = (b, share_at(b))
        if point[1] < TARGET_SHARE:
            lo = point
        else:
            hi = point
        best = min(best, point, key=lambda p: abs(p[1] - TARGET_SHARE))
    return best


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()), math.nan
    half = float(sstats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), half


def pgr(q: Questions, accuracy: float) -> float:
    """Performance gap recovered: 0 = Mixtral alone, 1 = GPT-4 alone."""
    a4, am = (float(x) for x in q.correct.mean(axis=0))
    return (accuracy - am) / (a4 - am)


@dataclass(frozen=True)
class Row:
    """One policy's report line: its runs at the calibrated ``target`` and, for a paced
    policy, at a second target whose mean share lies on the other side of 50% (``bracket``,
    None unpaced): the figures at exactly 50% share interpolate between the two."""

    spec: PolicySpec
    target: float
    calibration_share: float
    runs: list[Run]
    bracket: tuple[float, list[Run]] | None = None

    def weight(self) -> float:
        """The weight of ``runs`` in the interpolation at ``TARGET_SHARE`` (1 unpaced):
        ``w`` with ``w·s1 + (1-w)·s2 = TARGET_SHARE`` for the two mean shares."""
        if self.bracket is None:
            return 1.0
        s1 = float(np.mean([r.share for r in self.runs]))
        s2 = float(np.mean([r.share for r in self.bracket[1]]))
        return 1.0 if s1 == s2 else (s2 - TARGET_SHARE) / (s2 - s1)

    def at_share(self, value: Callable[[Run], float]) -> list[float]:
        """``value`` of each shuffle at ``TARGET_SHARE``: its two runs (same shuffle, the
        two targets) weighted by :meth:`weight`, one number per shuffle."""
        if self.bracket is None:
            return [value(r) for r in self.runs]
        w = self.weight()
        return [
            w * value(a) + (1.0 - w) * value(b)
            for a, b in zip(self.runs, self.bracket[1], strict=True)
        ]


def bracket(
    q: Questions, spec: PolicySpec, target: float, runs: list[Run], seeds: Sequence[int]
) -> tuple[float, list[Run]]:
    """Runs at a second target whose mean share is on the other side of ``TARGET_SHARE``
    from ``runs``' (15% of the target away, then 32%, 52%): calibration on a few shuffles
    lands within a few points of 50% on the reported ones, and PGR rises with the share,
    so the table interpolates instead of reading wherever calibration landed."""
    s1 = float(np.mean([r.share for r in runs]))
    step = 1.15 if s1 < TARGET_SHARE else 1.0 / 1.15
    other: tuple[float, list[Run]] = (target, runs)
    for i in (1, 2, 3):
        t2 = target * step**i
        other = (t2, [run_one(q, spec, t2, s) for s in seeds])
        s2 = float(np.mean([r.share for r in other[1]]))
        if (s1 - TARGET_SHARE) * (s2 - TARGET_SHARE) <= 0.0:
            break
    return other


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    m, h = mean_ci(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def table(q: Questions, rows: Sequence[Row]) -> str:
    """The results as markdown."""
    lines = [
        "| policy | targets $/1k questions | GPT-4 share there | accuracy at 50% share | "
        "PGR at 50% share | PGR at the calibrated target (share above) | "
        f"spend / target after {WARMUP:,} | spend / target, whole pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pg = r.at_share(lambda run: pgr(q, run.accuracy))
        paced = r.spec.paced
        every = r.runs + (r.bracket[1] if r.bracket else [])
        if r.bracket is None:
            targets = f"{r.target * 1000:.4f}{'' if paced else ' (mix cost)'}"
            shares = _fmt([x.share for x in r.runs])
        else:
            targets = f"{r.target * 1000:.4f} / {r.bracket[0] * 1000:.4f}"
            shares = f"{_fmt([x.share for x in r.runs])} / {_fmt([x.share for x in r.bracket[1]])}"
        lines.append(
            f"| {r.spec.label} | {targets} | {shares} | "
            f"{_fmt(r.at_share(lambda run: run.accuracy), 4)} | **{_fmt(pg)}** | "
            f"{_fmt([pgr(q, x.accuracy) for x in r.runs])} | "
            + (
                f"{_fmt([x.spend_after_warmup for x in every])} | "
                f"{_fmt([x.spend_total for x in every])} |"
                if paced
                else "— | — |"
            )
        )
    a4, am = (float(x) for x in q.correct.mean(axis=0))
    for label, acc in (
        ("hindsight oracle per subject", oracle_by_subject(q)),
        ("hindsight oracle per question", oracle_by_question(q)),
    ):
        lines.append(f"| {label} | — | 0.500 | {acc:.4f} | **{pgr(q, acc):.3f}** | — | — | — |")
    for m in (30, 60):
        acc, sd = oracle_by_subject_estimated(q, m)
        lines.append(
            f"| per-subject oracle, gains known from {m} outcomes per model and subject "
            f"(free) | — | 0.500 | {acc:.4f} (sd {sd:.4f}) | **{pgr(q, acc):.3f}** | — | — | — |"
        )
    lines.append(f"| GPT-4 alone | — | 1.000 | {a4:.4f} | 1.000 | — | — | — |")
    lines.append(f"| Mixtral alone | — | 0.000 | {am:.4f} | 0.000 | — | — | — |")
    return "\n".join(lines)


def curve_table(q: Questions, points: Mapping[str, Sequence[tuple[float, list[Run]]]]) -> str:
    """Accuracy against GPT-4 share at several targets, per policy."""
    lines = [
        "| policy | target $/1k questions | GPT-4 share | accuracy | PGR |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, pts in points.items():
        for b, runs in pts:
            acc = [x.accuracy for x in runs]
            lines.append(
                f"| {label} | {b * 1000:.4f} | {_fmt([x.share for x in runs])} | "
                f"{_fmt(acc, 4)} | {_fmt([pgr(q, a) for a in acc])} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Calibrate, replay, print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mmlu_replay", description=__doc__)
    parser.add_argument("--seeds", type=int, default=20, help="reported shuffles (0..N-1)")
    parser.add_argument("--only", default="", help="comma-separated policies")
    parser.add_argument("--quick", action="store_true", help="no curve, 2 curve seeds")
    parser.add_argument("--curve-seeds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--variance-scale", type=float, default=VARIANCE_SCALE)
    parser.add_argument("--output", type=FsPath, default=None)
    parser.add_argument(
        "--cost-model",
        choices=COST_MODELS,
        default="tokens",
        help="tokens: each call priced by its prompt; flat: a model's mean price per call",
    )
    args = parser.parse_args(argv)
    specs = policies(args.dim, args.variance_scale)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser.error(f"unknown policies {unknown}; choose from {', '.join(specs)}")
    q = load_questions(cost_model=args.cost_model)
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    rows: list[Row] = []
    curves: dict[str, list[tuple[float, list[Run]]]] = {}
    same_spend: dict[str, list[Run]] = {}
    for name in names:
        spec = specs[name]
        t0 = time.perf_counter()
        if spec.paced:
            target, cal_share = calibrate(q, spec)
        else:
            target, cal_share = mix_budget(q), TARGET_SHARE
        runs = [run_one(q, spec, target, s) for s in seeds]
        other = bracket(q, spec, target, runs, seeds) if spec.paced else None
        row = Row(spec, target, cal_share, runs, other)
        rows.append(row)
        if spec.paced and not args.quick:
            curves[spec.label] = [
                (target * f, [run_one(q, spec, target * f, s) for s in range(args.curve_seeds)])
                for f in (0.6, 1.0, 1.6)
            ]
            b0 = mix_budget(q)
            same_spend[spec.label] = [run_one(q, spec, b0, s) for s in range(args.curve_seeds)]
        print(
            f"{spec.label}: target {target * 1000:.4f} $/1k (calibration share "
            f"{cal_share:.3f}), share {np.mean([r.share for r in runs]):.3f}, PGR at 50% "
            f"{_fmt(row.at_share(lambda run: pgr(q, run.accuracy)))} "
            f"({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    secs = time.perf_counter() - started
    text = report(q, rows, curves, same_spend, args, secs)
    print(text)
    output = args.output
    full = not args.only and not args.quick and args.cost_model == "tokens"
    if output is None and full and args.seeds >= 20:
        output = RESULTS
    if output is not None:
        output.write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    return 0


def _flat_note(q: Questions) -> str:
    g, m = (float(c) * 1000 for c in q.cost[0])
    return (
        f"; **flat** (`--cost-model flat`): every call of a model costs that model's mean "
        f"over the data set, GPT-4 {g:.4f} $ and Mixtral {m:.4f} $ per 1,000 calls, so "
        "GPT-4's share of calls and spend move together"
    )


def report(
    q: Questions,
    rows: Sequence[Row],
    curves: Mapping[str, Sequence[tuple[float, list[Run]]]],
    same_spend: Mapping[str, list[Run]],
    args: argparse.Namespace,
    secs: float,
) -> str:
    """The markdown file."""
    facts = machine()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = " ".join(["python -m benchmarks.mmlu_replay", *sys.argv[1:]])
    b0 = mix_budget(q)
    compiled = any(r.spec.compiled is not None for r in rows)
    live = any(r.spec.name.startswith("router-") for r in rows)
    engine = " ".join(
        part
        for part in (
            "The linear policies' passes run compiled (`simulation.contextual.replay`, the "
            "policy objects' decisions for the same generator; SFC64 seeded by the shuffle)."
            if compiled and USE_COMPILED
            else "",
            "The live-Router rows run `Router.choose`/`Router.report` on `memory://` for "
            "every question, the Router keeping its own evidence, costs and price."
            if live
            else "",
        )
        if part
    )
    cal = "\n".join(
        f"- {r.spec.label}: {r.target * 1000:.4f} $/1k questions "
        f"({r.target / b0:.3f} x the 50/50 mix's cost), share {r.calibration_share:.3f} "
        "on the calibration shuffles"
        for r in rows
        if r.spec.paced
    )
    extra = ""
    if curves:
        extra += (
            "\n\n## Accuracy against GPT-4 share\n\nEach policy at 0.6x, 1x and 1.6x "
            f"its calibrated target, {args.curve_seeds} shuffles each.\n\n" + curve_table(q, curves)
        )
    if same_spend:
        lines = [
            f"| policy | GPT-4 share | accuracy | PGR | spend / target after {WARMUP:,} |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, runs in same_spend.items():
            acc = [x.accuracy for x in runs]
            lines.append(
                f"| {label} | {_fmt([x.share for x in runs])} | {_fmt(acc, 4)} | "
                f"{_fmt([pgr(q, a) for a in acc])} | "
                f"{_fmt([x.spend_after_warmup for x in runs])} |"
            )
        oracle = oracle_by_subject_spend(q, b0)
        lines.append(
            f"| hindsight oracle per subject, same spend | — | {oracle:.4f} | "
            f"{pgr(q, oracle):.3f} | 1.000 |"
        )
        extra += (
            "\n\n## At one spend target\n\nEvery paced policy at the 50/50 random mix's "
            f"cost ({b0 * 1000:.4f} $ per 1,000 questions), {args.curve_seeds} shuffles "
            "each: what the same money buys. The oracle spends the same money per subject "
            "by GPT-4's gain per extra dollar (`oracle_by_subject_spend`).\n\n" + "\n".join(lines)
        )
    return f"""# MMLU replay: GPT-4 vs Mixtral on real per-question outcomes

Rerun: `.venv/bin/python -m benchmarks.mmlu_replay` (all policies, {args.seeds} shuffles,
calibration included; `--only text,subject-context` for some, `--quick` without the
extra tables). Source: `benchmarks/mmlu_replay.py`; data: `benchmarks/data/routellm-mmlu`
(RouteLLM, Apache-2.0, see its NOTICE).

- Date: {date}; `{cmd}` took {secs / 60:.0f} min on {facts["cpu"]},
  {facts["cores"]} cores (load average {facts["load"]}), Python {facts["python"]}.
- {len(q):,} questions per shuffle, one attempt each, learning from scratch. Shuffles
  0..{args.seeds - 1} are reported; {", ".join(map(str, CALIBRATION_SEEDS))} only
  calibrate the targets. Intervals are 95% t-intervals over the shuffles.
- Cost model: GPT-4-1106 $10 / $30 per million input / output tokens, Mixtral-8x7B
  $0.60 / $0.60; input tokens = ceil(characters / {CHARS_PER_TOKEN}); {OUTPUT_TOKENS}
  output token{_flat_note(q) if args.cost_model == "flat" else ""}. A 50/50 random mix
  costs {b0 * 1000:.4f} $ per 1,000 questions.
- Linear policies: `ContextualThompsonSampling(dim={args.dim},
  variance_scale={args.variance_scale})`, other parameters at their defaults. Every
  paced policy runs under `SpendPacer` (gain {DEFAULT_GAIN}) and chooses by θ - λ·c
  with c the path's learned mean cost per call (per subject for the named context, as
  the Router keeps it, unless the row says otherwise). {engine}

## At 50% GPT-4 share

{table(q, rows)}

Each paced policy ran every shuffle at its calibrated target and at a second one whose
mean share is on the other side of 50% (both shares in the table); accuracy and PGR at
50% weight each shuffle's two runs so that the mean shares meet exactly 50%. Reading at
the calibrated target alone would credit a policy for every point of share the four
calibration shuffles missed by (PGR rises with the share): that reading, the operating
point a user's target gives, is the column after the bold one, beside the share it landed at.

Reading it. The hindsight oracles know both models' outcome on every question; an online
policy sees one model's outcome per question, and a subject has ~250 questions. The rows
"gains known from 30 / 60 outcomes" give the per-subject allocation that much
information buys, before paying for the outcomes: a fairer yardstick for a named
context, which learns each subject alone, than the hindsight oracle. With the subject's
own cost in the spend term (as the Router keeps costs per context) it buys the GPT-4 calls with
the most gain per dollar, which at a given share of calls are not the ones with the most
gain: that row needs a lower target to stay at 50% and its PGR there is lower, while at
one spend target (the last table) it buys the most. Measured while investigating
(`benchmarks/mmlu_replay.py`'s policies with a parameter changed, 6-20 shuffles): the
context prior's strength (2 or 40 pseudo-observations instead of 10), the exploration
floor (0 instead of 0.02), the pacer's gain (0.001 to 0.02 instead of 0.005), a sharper
Beta draw (posterior variance x 0.25 or x 0.1), and for the Gaussian policies the prior
variance (0.25 instead of 1) and the gain moved PGR at 50% share by less than the
intervals; no default was changed.

Calibrated targets:

{cal}{extra}
"""


if __name__ == "__main__":
    sys.exit(main())
