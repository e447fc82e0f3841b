# `make test-rounding` sets SALIENCY_COURSE_FUZZ=SEED: every classifier a notebook loads then has
# its weights multiplied by (1 + 1e-6·ε), ε ~ N(0, 1) drawn from SEED. That moves the last bits of
# every result a little more than a different CPU does (measured: a logit moves by ~3e-7 relative
# between AVX-512 and SSE kernels), so a printed number near a rounding boundary, a near-tie
# argmax or a chaotic optimisation shows up here on one machine, before a student's laptop finds
# it. Unset (the default), nothing changes.
import os as _os

if _os.environ.get("SALIENCY_COURSE_FUZZ"):
    import functools as _functools

    import torch as _torch

    import utils.models as _models

    _load = _models.load_classifier
    _seed = int(_os.environ["SALIENCY_COURSE_FUZZ"])
    _scale = float(_os.environ.get("SALIENCY_COURSE_FUZZ_SCALE", "1e-6"))

    @_functools.wraps(_load)
    def _fuzzed_load_classifier(*args, **kwargs):
        model = _load(*args, **kwargs)
        gen = _torch.Generator().manual_seed(_seed)
        with _torch.no_grad():
            for p in model.parameters():
                noise = _torch.randn(p.shape, generator=gen, dtype=_torch.float64)
                p.mul_((1 + _scale * noise).to(p.dtype).to(p.device))
        return model

    _models.load_classifier = _fuzzed_load_classifier
del _os
