# `make notebooks-1thread` sets SALIENCY_COURSE_THREADS=1: every notebook kernel then calls
# torch.set_num_threads(1) before its first cell, so that nbval checks that the committed outputs
# do not depend on the thread count (issue #8). Unset (the default), torch keeps its own choice.
import os as _os

if _os.environ.get("SALIENCY_COURSE_THREADS"):
    import torch as _torch

    _torch.set_num_threads(int(_os.environ["SALIENCY_COURSE_THREADS"]))
    del _torch
del _os
