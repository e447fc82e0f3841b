"""The catalogue of Notebook 04's self-checks: typical wrong answers are rejected with a hint
(an AssertionError), right answers written differently from the teacher's are accepted, and the
library's own functions handed in are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from utils import localisation as loc
from utils.course.exercises import nb04 as ex
from utils.course.exercises.checks import ExerciseRefusal
from utils.images import load_image, sample_path

# --- exercise 4: the seeds ----------------------------------------------------------------------


def _teacher_seeds(s, fq, bq):
    fg = s >= torch.quantile(s, fq)
    return fg, (s <= torch.quantile(s, bq)) & ~fg


def _nearest_seeds(s, fq, bq):
    fg = s >= torch.quantile(s, fq, interpolation="nearest")
    return fg, (s <= torch.quantile(s, bq, interpolation="nearest")) & ~fg


def _sorted_seeds(s, fq, bq):
    flat = s.flatten().sort().values
    n = flat.numel()
    fg = s >= flat[round(fq * (n - 1))]
    return fg, (s <= flat[round(bq * (n - 1))]) & ~fg


def _topk_seeds(s, fq, bq):
    n = s.numel()
    fg_t = s.flatten().topk(max(1, round((1 - fq) * n))).values[-1]
    bg_t = s.flatten().topk(max(1, round(bq * n)), largest=False).values[-1]
    fg = s >= fg_t
    return fg, (s <= bg_t) & ~fg


def _numpy_seeds(s, fq, bq):
    a = np.asarray(s, dtype=np.float64)
    fg = a >= np.quantile(a, fq)
    return fg, (a <= np.quantile(a, bq)) & ~fg


@pytest.mark.parametrize("right", [_teacher_seeds, _nearest_seeds, _sorted_seeds, _topk_seeds, _numpy_seeds])
def test_seeds_right_answers_pass(right, capsys):
    ex.check_seeds_fn(right)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "hint"), [
    (lambda s, fq, bq: _teacher_seeds(-s, fq, bq), "MOST salient"),
    (lambda s, fq, bq: (s >= fq * s.max(), s <= bq * s.max()), "fraction of its maximum"),
    (lambda s, fq, bq: (s > torch.quantile(s, fq), (s < torch.quantile(s, bq)) & ~(s > torch.quantile(s, fq))),
     "exactly at a quantile"),
    (lambda s, fq, bq: (s >= torch.quantile(s, fq), s <= torch.quantile(s, bq)), "plateau"),
    (lambda s, fq, bq: (s >= torch.quantile(s, fq), s <= torch.quantile(s, 0.5)), "background is not"),
    (lambda s, fq, bq: s, "pair"),
    (lambda s, fq, bq: (s, s), "boolean masks"),
    (lambda s, fq, bq: (torch.ones(3, 3, dtype=torch.bool),) * 2, "shape"),
])
def test_seeds_wrong_answers_get_a_hint(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_seeds_fn(wrong)


def test_seeds_library_is_refused():
    with pytest.raises(ExerciseRefusal, match="Exercise 4"):
        ex.check_seeds_fn(lambda s, fq, bq: (loc.localise(torch.rand(3, *s.shape), s).fg_seeds,
                                             loc.localise(torch.rand(3, *s.shape), s).bg_seeds))


def test_seeds_stub_gets_a_hint():
    def stub(s, fq, bq):
        raise NotImplementedError

    with pytest.raises(AssertionError, match="not written yet"):
        ex.check_seeds_fn(stub)


# --- exercise 3: GrabCut's iterations (recomputed reference) --------------------------------------

@pytest.fixture(scope="module")
def scenes():
    """Three photographs at 64 px (small, so fast) with a centred bump as the map; on two of them
    the extra GrabCut iterations move the box."""
    images = torch.stack([load_image(sample_path(n), size=64) for n in ("flower", "bee", "coffee")])
    maps = torch.stack([ex._bump(64, (12, 12, 52, 52))] * 3)
    truths = [(16, 16, 48, 48)] * 3
    once = loc.localisation_ious(images, maps, truths)
    refined = loc.localisation_ious(images, maps, truths, grabcut_iterations=3)
    assert not np.allclose(once, refined)
    return images, maps, truths, once, refined


def test_refined_ious_right_answers_pass(scenes, capsys):
    images, maps, truths, once, refined = scenes
    moved = abs(np.mean(refined) - np.mean(once)) > 0.1
    ex.check_refined_ious(refined, moved, images, maps, truths, once)
    ex.check_refined_ious(np.array(refined, dtype=np.float32), bool(moved), images, maps, truths, once)
    ex.check_refined_ious([loc.box_iou(loc.localise(im, m, grabcut_iterations=3).box, t)
                           for im, m, t in zip(images, maps, truths, strict=True)], np.bool_(moved), images, maps, truths, once)
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "0.1" not in out


@pytest.mark.parametrize(("make", "hint"), [
    (lambda once, refined: ([0.5] * len(once), False), "not the IoUs"),
    (lambda once, refined: ([v + 0.001 for v in once], False), "not the IoUs"),
    (lambda once, refined: (once, False), "one-cut"),
    (lambda once, refined: (refined, "no"), "True or False"),
    (lambda once, refined: (refined[:2], False), "expected 3 IoUs"),
    (lambda once, refined: (None, None), "no answer yet"),
])
def test_refined_ious_wrong_answers_get_a_hint(scenes, make, hint):
    images, maps, truths, once, refined = scenes
    ious, flag = make(once, refined)
    with pytest.raises(AssertionError, match=hint):
        ex.check_refined_ious(ious, flag, images, maps, truths, once)


def test_refined_ious_wrong_verdict(scenes):
    images, maps, truths, once, refined = scenes
    moved = abs(np.mean(refined) - np.mean(once)) > 0.1
    # compared with a threshold far from the measured change, the wrong verdict is rejected
    with pytest.raises(AssertionError, match="MEAN IoUs"):
        ex.check_refined_ious(refined, True, images, maps, truths, once, threshold=abs(
            np.mean(refined) - np.mean(once)) + 0.5)
    assert isinstance(moved, np.bool_ | bool)


# --- exercise 5: the pipeline for one photograph ------------------------------------------------

def _iou(box, truth):
    iw = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
    ih = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
    inter = iw * ih
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter)


def _pipeline(seeds, iou=_iou, component=True):
    def photo(image, saliency, truth):
        fg, bg = seeds(saliency, 0.95, 0.30)
        seg, _ = loc.graphcut_segmentation(image, fg, bg)
        if component:
            _, box = loc.largest_component(seg)
        else:
            ys, xs = np.nonzero(np.asarray(seg))
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        return box, iou(box, truth)
    return photo


def _numpy_iou(box, truth):
    a, b = np.array(box, float), np.array(truth, float)
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = wh.prod()
    return float(inter / ((a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter))


@pytest.fixture(scope="module")
def photo_case():
    image, boxes = ex._squares_scene()
    return image, ex._bump(image.shape[-1], boxes[1]), (18, 22, 36, 34)   # overlaps the green square


@pytest.mark.parametrize("right", [_pipeline(_teacher_seeds), _pipeline(_nearest_seeds, _numpy_iou),
                                   _pipeline(_numpy_seeds)])
def test_pipeline_right_answers_pass(photo_case, right, capsys):
    ex.check_localise_photo_fn(right, *photo_case)
    assert "✓" in capsys.readouterr().out


def _inclusive_iou(box, truth):
    iw = max(0, min(box[2], truth[2]) - max(box[0], truth[0]) + 1)
    ih = max(0, min(box[3], truth[3]) - max(box[1], truth[1]) + 1)
    inter = iw * ih
    return inter / ((box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (truth[2] - truth[0] + 1)
                    * (truth[3] - truth[1] + 1) - inter)


def _over_truth(box, truth):
    iw = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
    ih = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
    return iw * ih / ((truth[2] - truth[0]) * (truth[3] - truth[1]))


def _inclusive_box(image, saliency, truth):
    """The reviewer's case: the right box written with inclusive ends, its IoU computed from it."""
    box, _ = _pipeline(_teacher_seeds)(image, saliency, truth)
    box = (*box[:2], box[2] - 1, box[3] - 1)
    return box, _numpy_iou(box, truth)


def _swapped(s, fq, bq):
    fg, bg = _teacher_seeds(s, fq, bq)
    return bg, fg


@pytest.mark.parametrize(("wrong", "hint"), [
    (_pipeline(_teacher_seeds, component=False), "whole GraphCut foreground"),
    (_pipeline(_teacher_seeds, _inclusive_iou), "exclusive"),
    (_inclusive_box, "exclusive ends"),
    (_pipeline(_teacher_seeds, _over_truth), "UNION"),
    (_pipeline(_swapped), "differs from the method"),
    (lambda image, saliency, truth: (0, 0, 48, 48), "pair"),
    (lambda image, saliency, truth: ((0, 0, 48), 0.3), "four ints"),
])
def test_pipeline_wrong_answers_get_a_hint(photo_case, wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_localise_photo_fn(wrong, *photo_case)


@pytest.mark.parametrize("library", [
    lambda image, saliency, truth: (loc.localise(image, saliency).box,
                                    loc.box_iou(loc.localise(image, saliency).box, truth)),
    lambda image, saliency, truth: (_pipeline(_teacher_seeds)(image, saliency, truth)[0],
                                    loc.box_iou(_pipeline(_teacher_seeds)(image, saliency, truth)[0], truth)),
    lambda image, saliency, truth: (_pipeline(_teacher_seeds)(image, saliency, truth)[0], float(
        torchvision.ops.box_iou(torch.tensor([_pipeline(_teacher_seeds)(image, saliency, truth)[0]], dtype=torch.float),
                                torch.tensor([truth], dtype=torch.float))[0, 0])),
])
def test_pipeline_library_is_refused(photo_case, library):
    with pytest.raises(ExerciseRefusal, match="Exercise 5"):
        ex.check_localise_photo_fn(library, *photo_case)


# --- exercise 5: the top-5 protocol -------------------------------------------------------------

_photo = _pipeline(_teacher_seeds)


def _top5_teacher(model, image, truth, label, saliency_for):
    with torch.no_grad():
        guesses = model(image[None])[0].topk(5).indices.tolist()
    ious = {c: _photo(image, saliency_for(c), truth)[1] for c in guesses}
    return max(ious.values()), any(c == label and v >= 0.5 for c, v in ious.items())


def _top5_loop(model, image, truth, label, saliency_for):
    scores = model(image.unsqueeze(0)).detach().numpy()[0]
    best, correct = 0.0, False
    for c in np.argsort(-scores)[:5]:
        _, iou = _pipeline(_numpy_seeds, _numpy_iou)(image, saliency_for(int(c)), truth)
        best = max(best, iou)
        correct = correct or (int(c) == label and iou >= 0.5)
    return best, correct


@pytest.mark.parametrize("right", [_top5_teacher, _top5_loop])
def test_top5_right_answers_pass(right, capsys):
    ex.check_top5_fn(right)
    assert "✓" in capsys.readouterr().out


def _top1_only(model, image, truth, label, saliency_for):
    c = int(model(image[None])[0].argmax())
    iou = _photo(image, saliency_for(c), truth)[1]
    return iou, c == label and iou >= 0.5


def _mean_of_five(model, image, truth, label, saliency_for):
    guesses = model(image[None])[0].topk(5).indices.tolist()
    ious = [_photo(image, saliency_for(c), truth)[1] for c in guesses]
    return float(np.mean(ious)), any(c == label and v >= 0.5 for c, v in zip(guesses, ious, strict=True))


def _class_blind(model, image, truth, label, saliency_for):
    guesses = model(image[None])[0].topk(5).indices.tolist()
    ious = [_photo(image, saliency_for(c), truth)[1] for c in guesses]
    return max(ious), max(ious) >= 0.5


def _lowest_five(model, image, truth, label, saliency_for):
    guesses = model(image[None])[0].topk(5, largest=False).indices.tolist()
    ious = [_photo(image, saliency_for(c), truth)[1] for c in guesses]
    return max(ious), False


@pytest.mark.parametrize(("wrong", "hint"), [
    (_top1_only, "five classes the model scores highest"),
    (_mean_of_five, "not their average"),
    (_class_blind, "its class is the label"),
    (_lowest_five, "five classes the model scores highest"),
    (lambda *a: 0.5, "pair"),
])
def test_top5_wrong_answers_get_a_hint(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_top5_fn(wrong)


def test_top5_library_is_refused():
    def library(model, image, truth, label, saliency_for):
        guesses = model(image[None])[0].topk(5).indices.tolist()
        ious = [loc.box_iou(loc.localise(image, saliency_for(c)).box, truth) for c in guesses]
        return max(ious), False

    with pytest.raises(ExerciseRefusal, match="Exercise 5"):
        ex.check_top5_fn(library)


def test_refined_ious_verdict_near_the_threshold(scenes):
    """No grey zone: a change 0.005 above the threshold is "more", and the other verdict is wrong."""
    images, maps, truths, once, refined = scenes
    delta = abs(np.mean(refined) - np.mean(once))
    ex.check_refined_ious(refined, True, images, maps, truths, once, threshold=delta - 0.005)
    with pytest.raises(AssertionError, match="MEAN IoUs"):
        ex.check_refined_ious(refined, False, images, maps, truths, once, threshold=delta - 0.005)
    with pytest.raises(AssertionError, match="MEAN IoUs"):
        ex.check_refined_ious(refined, True, images, maps, truths, once, threshold=delta + 0.005)


# --- exercise 2: the whole-image box --------------------------------------------------------------

_GT = [(40, 26, 183, 199), (0, 0, 224, 224), (10, 100, 60, 130)]


@pytest.mark.parametrize("fn", [
    lambda b, w, h: (b[2] - b[0]) * (b[3] - b[1]) / (w * h),
    lambda b, w, h: float(np.prod(np.subtract(b[2:], b[:2]))) / w / h,            # numpy
    lambda b, w, h: torch.zeros(h, w).index_fill(0, torch.arange(b[1], b[3]), 1)[:, b[0]:b[2]].sum().item()
    / (w * h),                                                                    # counting pixels
])
def test_whole_image_right_answers(fn, capsys):
    mean = ex.check_whole_image_iou(fn, _GT)
    assert mean == pytest.approx(np.mean([loc.box_iou((0, 0, 224, 224), b) for b in _GT]))
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "hint"), [
    (lambda b, w, h: (b[2] - b[0] + 1) * (b[3] - b[1] + 1) / (w * h), "exclusive"),
    (lambda b, w, h: (b[2] - b[0]) * (b[3] - b[1]) / 224**2, "not 224"),
    (lambda b, w, h: 1.0, "union"),
    (lambda b, w, h: (b[2] - b[0]) / w, "not the IoU"),
    (lambda b, w, h: "big", "one number"),
    (None, "no answer yet"),
])
def test_whole_image_wrong_answers(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_whole_image_iou(fn, _GT)


def test_whole_image_library_refused():
    with pytest.raises(ExerciseRefusal, match="Exercise 2"):
        ex.check_whole_image_iou(lambda b, w, h: loc.box_iou((0, 0, w, h), b), _GT)
    with pytest.raises(ExerciseRefusal, match="Exercise 2"):
        ex.check_whole_image_iou(lambda b, w, h: float(torchvision.ops.box_iou(
            torch.tensor([[0.0, 0, w, h]]), torch.tensor([b], dtype=torch.float))[0, 0]), _GT)
