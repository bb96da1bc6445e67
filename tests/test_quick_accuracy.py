"""The accuracy an app page measures in its own process: the whole test set when it fits in the
time budget, else a seeded sample with its standard error; and the near-chance test."""

from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.loading import load_checkpoint
from pof.training.evaluation import accuracy_within, evaluate, near_chance


def test_whole_set_equals_evaluate_and_a_spent_budget_gives_a_sample_with_its_error():
    model, meta = load_checkpoint("assets/digits-cnn-small-sgd.safetensors")
    d = load_dataset("digits")
    whole = accuracy_within(model, d.x_test, d.y_test, meta["mean"], meta["std"], budget_s=60)
    batches = Batches(d.x_test, d.y_test, meta["mean"], meta["std"], 1024, shuffle=False)
    assert whole["acc"] == evaluate(model, batches, d.num_classes)["acc"]
    assert whole["n"] == whole["total"] == len(d.x_test) and whole["se"] == 0
    part = accuracy_within(
        model, d.x_test, d.y_test, meta["mean"], meta["std"], budget_s=0, batch_size=100
    )
    assert part["n"] == 100 and part["total"] == len(d.x_test)  # one batch, then the budget
    p = part["acc"]
    fpc = (len(d.x_test) - 100) / (len(d.x_test) - 1)
    assert part["se"] == (p * (1 - p) / 100 * fpc) ** 0.5
    assert part["seconds_all"] > 0
    again = accuracy_within(
        model, d.x_test, d.y_test, meta["mean"], meta["std"], budget_s=0, batch_size=100
    )
    assert again["acc"] == p  # the same seeded sample
    model.train()
    accuracy_within(model, d.x_test, d.y_test, meta["mean"], meta["std"], budget_s=0)
    assert model.training  # measured in eval mode, the caller's mode given back


def test_near_chance_margin():
    assert near_chance(0.104, 0.0, 10) and near_chance(0.0, 0.0, 10)  # wrong order: below chance
    assert not near_chance(0.30, 0.0, 10)
    assert near_chance(0.55, 0.0, 2) and not near_chance(0.65, 0.0, 2)
    assert near_chance(0.25, 0.03, 10)  # within two standard errors of the margin
