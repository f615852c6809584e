"""The MMLU replay benchmark's pieces: the data and cost model, the hindsight oracles, and
every policy run on a 500-question slice (the full replay is a benchmark, not a test)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from benchmarks import mmlu_replay as mr


@pytest.fixture(scope="module")
def questions() -> mr.Questions:
    return mr.load_questions()


def test_the_data_is_the_documented_file(questions: mr.Questions) -> None:
    digest = hashlib.sha256(mr.DATA.read_bytes()).hexdigest()
    readme = (mr.DATA.parent / "README.md").read_text()
    assert digest in readme
    assert (mr.DATA.parent / "NOTICE").is_file()
    assert "Apache License" in (mr.DATA.parent / "LICENSE-Apache-2.0").read_text()
    assert len(questions) == 14_042
    assert len(set(questions.subject)) == 57
    a4, am = questions.correct.mean(axis=0)
    assert round(a4, 3) == 0.806 and round(am, 3) == 0.681  # as the README states


def test_cost_model_is_list_price_times_tokens(questions: mr.Questions) -> None:
    prompt = "x" * 401  # ceil(401 / 4) = 101 input tokens, one output token
    assert mr.call_cost(prompt, 0) == pytest.approx(101 * 10e-6 + 30e-6)
    assert mr.call_cost(prompt, 1) == pytest.approx(101 * 0.6e-6 + 0.6e-6)
    i = 1234
    assert questions.cost[i, 0] == mr.call_cost(questions.prompt[i], 0)
    ratio = np.median(questions.cost[:, 0] / questions.cost[:, 1])
    assert 16 < ratio < 17.5


def test_flat_cost_model_charges_each_model_its_mean_call(questions: mr.Questions) -> None:
    flat = mr.load_questions(cost_model="flat")
    assert flat.correct is not questions.correct and np.array_equal(flat.correct, questions.correct)
    means = questions.cost.mean(axis=0)
    assert np.allclose(flat.cost, means[None, :], rtol=0, atol=0)
    # Same money per question overall, so the 50/50 mix costs the same under both models.
    assert mr.mix_budget(flat) == pytest.approx(mr.mix_budget(questions), rel=1e-12)
    with pytest.raises(ValueError, match="cost_model must be one of"):
        mr.load_questions(cost_model="per-token")


def _toy() -> mr.Questions:
    # Subject a: only GPT-4 right; b: both right; c: only Mixtral right. 4 questions each.
    correct = [[1, 0]] * 4 + [[1, 1]] * 4 + [[0, 1]] * 4
    return mr.Questions(
        ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        [f"q{i}" for i in range(12)],
        np.array(correct, dtype=float),
        np.tile([1.0, 0.1], (12, 1)),
    )


def test_hindsight_oracles() -> None:
    q = _toy()
    # Mixtral alone: 8/12. Half the questions (6) to GPT-4: subject a (gain +4) and half
    # of b (gain 0) per subject; per question the same four gains of +1.
    assert mr.oracle_by_subject(q, 0.5) == pytest.approx(12 / 12)
    assert mr.oracle_by_subject(q, 0.25) == pytest.approx(11 / 12)  # 3 of a's 4
    assert mr.oracle_by_question(q, 0.5) == pytest.approx(12 / 12)
    assert mr.oracle_by_question(q, 1 / 6) == pytest.approx(10 / 12)
    skewed = q.take([0, 1, 4, 8])  # GPT-4 3/4, Mixtral 2/4
    assert mr.pgr(skewed, 0.5) == 0.0 and mr.pgr(skewed, 0.75) == 1.0
    assert mr.pgr(skewed, 0.625) == pytest.approx(0.5)


def test_every_policy_runs_on_a_slice_and_accounts_for_its_choices(
    questions: mr.Questions,
) -> None:
    q = questions.take(range(0, 14_000, 28))  # 500 questions across the subjects
    target = mr.mix_budget(q)
    specs = mr.policies(dim=64, variance_scale=0.1)
    assert set(specs) == {
        "random",
        "task",
        "subject-context",
        "subject-context-task-cost",
        "subject-context-strength-1",
        "subject-context-optimistic",
        "subject-context-upper",
        "subject-feature",
        "text",
        "text-pairs",
        "subject+text",
        "router-task",
        "router-subject-context",
        "router-text",
        "router-subject-context-priced",
        "router-text-priced",
    }
    for name, spec in specs.items():
        order = mr.shuffle(len(q), 3)
        run = mr.replay(q, order, spec.build(q, target, np.random.default_rng(4)), target)
        rows = np.asarray(order)
        assert run.picks.shape == (500,) and set(run.picks.tolist()) <= {0, 1}
        assert run.accuracy == pytest.approx(q.correct[rows, run.picks].mean())
        assert run.share == pytest.approx(np.mean(run.picks == 0))
        spend = q.cost[rows, run.picks]
        assert run.spend_total == pytest.approx(spend.mean() / target)
        assert run.spend_after_warmup == pytest.approx(spend[250:].mean() / target)
        # Both models are used, and the paced ones keep spend near the target.
        assert 0.05 < run.share < 0.95, name
        if spec.paced:
            assert 0.8 < run.spend_total < 1.25, (name, run.spend_total)
        # The same seed replays the same choices.
        again = mr.replay(q, order, spec.build(q, target, np.random.default_rng(4)), target)
        assert np.array_equal(again.picks, run.picks)


@pytest.mark.parametrize("mode", ["subject-context-priced", "text-priced"])
def test_a_priced_router_prices_each_question_by_its_prompt(
    questions: mr.Questions, mode: str
) -> None:
    q = questions.take(range(0, 14_000, 700))
    chooser = mr.RouterChooser(q, mr.mix_budget(q), np.random.default_rng(0), mode, dim=64)
    for i in (0, 7, 19):
        # The cost model's price plus the 4 tokens a message adds in the estimate.
        expected = [q.cost[i, k] + 4 * mr.PRICES[k][0] for k in range(2)]
        assert chooser.router.ranking.request_costs((q.prompt[i],), {}) == pytest.approx(
            expected, rel=1e-12
        )
    plain = mr.RouterChooser(q, mr.mix_budget(q), np.random.default_rng(0), "text", dim=64)
    assert plain.router.ranking.request_costs((q.prompt[0],), {}) is None


@pytest.mark.parametrize(
    "name",
    [
        "subject-context",
        "subject-context-optimistic",
        "subject-context-upper",
        "subject-feature",
        "router-subject-context",
    ],
)
def test_subject_policies_learn_which_subjects_need_gpt4(name: str) -> None:
    # 600 questions in three subjects: GPT-4 needed on a, never on b, harmful on c.
    rng = np.random.default_rng(0)
    base = _toy()
    rows = rng.integers(0, 12, 600)
    q = mr.Questions(
        [base.subject[i] for i in rows],
        [f"{base.prompt[i]}-{j}" for j, i in enumerate(rows)],
        base.correct[rows],
        base.cost[rows],
    )
    target = mr.mix_budget(q, 0.4)
    spec = mr.policies(dim=64, variance_scale=0.1)[name]
    order = mr.shuffle(len(q), 1)
    run = mr.replay(q, order, spec.build(q, target, np.random.default_rng(2)), target)
    subj = np.array(q.subject)[np.asarray(order)]
    late = np.arange(600) >= 300
    share = {s: float(np.mean(run.picks[late & (subj == s)] == 0)) for s in "abc"}
    assert share["a"] > 0.85
    assert share["c"] < 0.1
    assert share["b"] < share["a"]
    assert run.accuracy > (8 + 0.6 * 4) / 12  # well above Mixtral alone (8/12)
    assert not math.isnan(run.spend_total)


def test_paced_beta_draws_use_the_posterior_as_named() -> None:
    s, f = np.array([30.0, 3.0]), np.array([10.0, 1.0])
    a, b = 1.0 + s, 1.0 + f  # the Beta(1, 1) prior's posterior
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    pacer = mr.SpendPacer(1.0)
    upper = mr.PacedBeta(pacer, np.random.default_rng(0), draw="upper")
    assert upper._theta(s, f) == pytest.approx(mean + 2.0 * sd, rel=1e-12)
    optimistic = mr.PacedBeta(pacer, np.random.default_rng(0), draw="optimistic")
    plain = mr.PacedBeta(pacer, np.random.default_rng(0))
    for _ in range(200):
        raw = plain._theta(s, f)
        # The same generator's draw, raised to the mean where it fell below it.
        assert np.array_equal(optimistic._theta(s, f), np.maximum(raw, mean))
    with pytest.raises(ValueError, match="draw must be one of"):
        mr.PacedBeta(pacer, np.random.default_rng(0), draw="ucb")


def test_compiled_passes_make_the_policy_objects_choices(questions: mr.Questions) -> None:
    pytest.importorskip("numba")
    q = questions.take(range(0, 14_000, 35))  # 400 questions
    target = mr.mix_budget(q)
    spec = mr.policies(dim=64, variance_scale=0.1)["subject+text"]
    assert spec.compiled is not None
    compiled = spec.compiled(q, target, 7)
    order = mr.shuffle(len(q), 7)
    objects = mr.replay(q, order, spec.build(q, target, mr.compiled_rng(7)), target)
    np.testing.assert_array_equal(compiled.picks, objects.picks)
    assert compiled == objects  # the same figures


def test_oracle_at_equal_spend_buys_gain_per_dollar() -> None:
    q = _toy()  # a: GPT-4 +1 per question, b: 0, c: -1; GPT-4 costs 0.9 more per call
    costs = q.cost.copy()
    costs[:4, 0] = 1.9  # subject a's GPT-4 calls cost twice as much extra
    dear = mr.Questions(q.subject, q.prompt, q.correct, costs)
    mixtral = 0.1
    # Enough money beyond Mixtral for 2 of a's 4 questions (extra 1.8 each).
    budget = mixtral + 2 * 1.8 / 12
    assert mr.oracle_by_subject_spend(dear, budget) == pytest.approx((8 + 2) / 12)
    assert mr.oracle_by_subject_spend(dear, mixtral) == pytest.approx(8 / 12)
    assert mr.oracle_by_subject_spend(dear, 10.0) == pytest.approx(12 / 12)


def test_oracle_with_estimated_gains_is_the_oracle_when_it_sees_everything() -> None:
    q = _toy()
    acc, sd = mr.oracle_by_subject_estimated(q, outcomes=4, draws=3, share=0.5)
    assert acc == pytest.approx(mr.oracle_by_subject(q, 0.5)) and sd == 0.0
    # The toy's questions are alike within a subject: one outcome per model tells the gain.
    rough, _ = mr.oracle_by_subject_estimated(q, outcomes=1, draws=20, share=0.25)
    assert rough == pytest.approx(mr.oracle_by_subject(q, 0.25))
    # On MMLU a few outcomes misjudge subjects: worth less than the hindsight oracle.
    real = mr.load_questions()
    few, sd = mr.oracle_by_subject_estimated(real, outcomes=10, draws=5)
    assert few < mr.oracle_by_subject(real) - 0.01 and sd > 0.0


def test_figures_at_half_share_interpolate_between_the_two_targets() -> None:
    def run(share: float, accuracy: float) -> mr.Run:
        return mr.Run(accuracy, share, 1.0, 1.0, np.zeros(0, dtype=np.intp))

    spec = mr.policies(dim=64, variance_scale=0.1)["task"]
    low = [run(0.46, 0.70), run(0.48, 0.72)]  # mean share 0.47
    high = [run(0.56, 0.76), run(0.58, 0.80)]  # mean share 0.57
    row = mr.Row(spec, 1.0, 0.5, low, (1.2, high))
    # 0.47 w + 0.57 (1 - w) = 0.5  =>  w = 0.7, per shuffle
    assert row.weight() == pytest.approx(0.7)
    assert row.at_share(lambda r: r.accuracy) == pytest.approx(
        [0.7 * 0.70 + 0.3 * 0.76, 0.7 * 0.72 + 0.3 * 0.80]
    )
    assert mr.Row(spec, 1.0, 0.5, low).at_share(lambda r: r.share) == [0.46, 0.48]
