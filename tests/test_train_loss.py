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


# --- listwise objectives over Best-of-N pools --------------------------------------------------

from fcrm_ray.train.loss import LISTWISE_LOSSES, listwise_loss, pool_metrics  # noqa: E402


def _pools():
    # pool 0: 3 members (positive first), padded to 4; pool 1: 4 members, two positives
    r = torch.tensor([[1.0, 0.5, -1.0, 0.0], [0.0, 2.0, 1.0, -0.5]])
    pos = torch.tensor([[True, False, False, False], [False, True, True, False]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    return r, pos, valid


def test_softmax_listwise_known_value_and_padding_is_ignored():
    r, pos, valid = _pools()
    loss, counts = listwise_loss(r, pos, valid, "softmax")
    p0 = math.exp(1.0) / (math.exp(1.0) + math.exp(0.5) + math.exp(-1.0))
    p1 = (math.exp(2.0) + math.exp(1.0)) / (math.exp(0.0) + math.exp(2.0) + math.exp(1.0) + math.exp(-0.5))
    assert loss.item() == pytest.approx(-(math.log(p0) + math.log(p1)) / 2, rel=1e-6)
    assert counts == {"used": 2, "skipped_no_positive": 0, "skipped_no_negative": 0}
    # whatever sits in a padding slot (even a huge reward or a positive label) changes nothing
    r2, pos2 = r.clone(), pos.clone()
    r2[0, 3], pos2[0, 3] = 50.0, True
    assert listwise_loss(r2, pos2, valid, "softmax")[0].item() == pytest.approx(loss.item(), rel=1e-6)


def test_hardest_negative_known_value():
    r, pos, valid = _pools()
    loss, _ = listwise_loss(r, pos, valid, "hardest_negative")
    # pool 0: positive 1.0 vs hardest negative 0.5; pool 1: positives 2.0, 1.0 vs hardest 0.0
    expected = (-_logsig(0.5) + (-_logsig(2.0) - _logsig(1.0)) / 2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", LISTWISE_LOSSES)
def test_listwise_gradient_lifts_positives_lowers_the_top_negative_and_skips_padding(kind):
    r, pos, valid = _pools()
    r = r.clone().requires_grad_(True)
    listwise_loss(r, pos, valid, kind)[0].backward()
    g = r.grad
    assert (g[pos] < 0).all()  # descent raises every positive
    assert g[0, 1] > 0 and g[1, 0] > 0  # ... and lowers each pool's hardest negative
    assert g[0, 3] == 0  # a padding slot gets no gradient
    if kind == "hardest_negative":
        assert g[0, 2] == 0 and g[1, 3] == 0  # only the hardest negative is touched


def test_pools_without_a_positive_or_negative_are_skipped_and_counted():
    r, pos, valid = _pools()
    r3 = torch.cat([r, torch.tensor([[3.0, 1.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]])])
    pos3 = torch.cat([pos, torch.tensor([[False, False, False, False], [True, True, False, False]])])
    valid3 = torch.cat([valid, torch.tensor([[True, True, True, False], [True, True, False, False]])])
    for kind in LISTWISE_LOSSES:
        loss, counts = listwise_loss(r3, pos3, valid3, kind)
        assert counts == {"used": 2, "skipped_no_positive": 1, "skipped_no_negative": 1}
        assert loss.item() == pytest.approx(listwise_loss(r, pos, valid, kind)[0].item(), rel=1e-6)
    # nothing usable: a zero loss that still backpropagates (every rank runs the same graph)
    rr = r3[2:].clone().requires_grad_(True)
    loss, counts = listwise_loss(rr, pos3[2:], valid3[2:], "softmax")
    assert loss.item() == 0 and counts["used"] == 0
    loss.backward()
    assert torch.equal(rr.grad, torch.zeros_like(rr))


def test_listwise_rejects_bad_shapes_and_kinds():
    r, pos, valid = _pools()
    with pytest.raises(ValueError, match="listwise loss must be one of"):
        listwise_loss(r, pos, valid, "lambdarank")
    with pytest.raises(ValueError, match="same"):
        listwise_loss(r[:, :3], pos, valid)


def test_pool_top1_counts_usable_pools_only():
    r, pos, valid = _pools()
    r = r.clone()
    r[1, 0] = 5.0  # pool 1's top member is now a negative
    assert pool_metrics(r, pos, valid) == {"pool_top1": 0.5}


def test_config_and_loss_agree_on_the_listwise_kinds():
    from fcrm_ray.train import config

    assert config.LISTWISE_LOSSES == LISTWISE_LOSSES
