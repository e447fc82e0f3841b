"""utils.box_measures: the pointing game, its centre baseline and the mass in the box."""

from __future__ import annotations

import pytest
import torch

from utils.box_measures import centre_pointing, mass_in_box, pointing_game


def test_pointing_game_hand_made():
    maps = torch.zeros(3, 10, 10)
    maps[0, 2, 3] = 1  # inside (x=3, y=2) of box 0
    maps[1, 9, 9] = 1  # outside box 1
    maps[2, 5, 8] = 1  # just right of box 2 (x1 = 8 is exclusive)
    boxes = [(1, 1, 5, 5), (0, 0, 4, 4), (4, 4, 8, 8)]
    assert pointing_game(maps, boxes, tolerance=0).tolist() == [True, False, False]
    assert pointing_game(maps, boxes, tolerance=1).tolist() == [True, False, True]
    assert bool(pointing_game(maps[0], boxes[0], tolerance=0))
    # a map that points exactly at the object scores 1 in the pointing game
    obj = torch.zeros(2, 10, 10)
    obj[:, 6:9, 1:4] = torch.rand(2, 3, 3) + 1
    assert pointing_game(obj, [(1, 6, 4, 9)] * 2, tolerance=0).float().mean() == 1.0


@pytest.mark.parametrize(
    "maps, boxes, kwargs, match",
    [(torch.zeros(2, 4, 4), [(0, 0, 2, 2)], {}, "one box per map"),
     (torch.zeros(1, 4, 4), [(0, 0, 5, 2)], {}, "inside"),
     (torch.zeros(1, 4, 4), [(0, 0, 2, 2)], {"tolerance": -1}, "tolerance"),
     (torch.zeros(4), [(0, 0, 2, 2)], {}, "maps")],
)
def test_pointing_game_bad_inputs(maps, boxes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pointing_game(maps, boxes, **kwargs)


def test_mass_in_box_uniform_map_is_one_and_concentrated_map_is_inverse_area():
    maps = torch.ones(2, 10, 10)
    maps[1] = 0
    maps[1, 2:4, 2:7] = 1.0                     # all mass in the box below
    areas, ratios = mass_in_box(maps, [(2, 2, 7, 4), (2, 2, 7, 4)])
    assert areas == pytest.approx([0.1, 0.1])
    assert ratios == pytest.approx([1.0, 10.0])


@pytest.mark.parametrize("maps, boxes, message", [
    (torch.ones(10, 10), [(0, 0, 5, 5)], "N, H, W"),
    (torch.ones(2, 10, 10), [(0, 0, 5, 5)], "one box per map"),
    (-torch.ones(1, 10, 10), [(0, 0, 5, 5)], "non-negative"),
    (torch.zeros(1, 10, 10), [(0, 0, 5, 5)], "zero everywhere"),
    (torch.ones(1, 10, 10), [(0, 0, 11, 5)], "not inside"),
])
def test_mass_in_box_rejects_bad_input(maps, boxes, message):
    with pytest.raises(ValueError, match=message):
        mass_in_box(maps, boxes)


def test_centre_pointing_hits_boxes_around_the_centre_only():
    boxes = [(100, 100, 124, 124), (0, 0, 40, 40), (70, 70, 98, 98), (0, 0, 224, 224)]
    assert centre_pointing(boxes, 224, 224).tolist() == [True, False, True, True]
    assert centre_pointing(boxes, 224, 224, tolerance=0).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="height"):
        centre_pointing(boxes, 0, 224)
