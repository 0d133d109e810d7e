"""Bradley-Terry loss and pair metrics on batches with known answers."""

import math

import pytest
import torch

from fcrm_ray.train.loss import bradley_terry_loss, pair_metrics


def _logsig(x):
    return math.log(1 / (1 + math.exp(-x)))


def test_loss_known_values():
    rc, rr = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = -(_logsig(2.0) + _logsig(0.0) + _logsig(-2.0)) / 3
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)


def test_margin_shifts_the_difference():
    rc, rr = torch.tensor([1.5]), torch.tensor([0.5])
    assert bradley_terry_loss(rc, rr, margin=1.0).item() == pytest.approx(-_logsig(0.0), rel=1e-6)
    assert bradley_terry_loss(rc, rr, margin=1.0).item() > bradley_terry_loss(rc, rr).item()


def test_centering_term_adds_mean_square_of_sum():
    rc, rr = torch.tensor([3.0, 1.0]), torch.tensor([1.0, -1.0])
    base = bradley_terry_loss(rc, rr).item()
    centred = bradley_terry_loss(rc, rr, center_coef=0.1).item()
    assert centred - base == pytest.approx(0.1 * ((4.0 ** 2 + 0.0 ** 2) / 2), rel=1e-6)


def test_gradient_pushes_chosen_up_and_rejected_down():
    rc = torch.tensor([0.0, 0.3], requires_grad=True)
    rr = torch.tensor([0.0, 0.1], requires_grad=True)
    bradley_terry_loss(rc, rr).backward()
    assert (rc.grad < 0).all() and (rr.grad > 0).all()
    assert torch.allclose(rc.grad, -rr.grad)


def test_pair_metrics_ties_count_as_wrong():
    m = pair_metrics(torch.tensor([1.0, 0.0, 2.0, 0.5]), torch.tensor([0.0, 0.0, 3.0, 0.0]))
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["reward_chosen"] == pytest.approx(3.5 / 4)
    assert m["reward_rejected"] == pytest.approx(3.0 / 4)
    assert m["margin"] == pytest.approx(0.5 / 4)
