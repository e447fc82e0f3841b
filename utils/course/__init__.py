"""The course machinery, apart from the method: self-checks (``exercises``), tables checked with a
tolerance (``expect``), the student edition (``edition``), the report (``report``), interleaved
timing (``timing``), the environment report (``env``) and the network guard (``offline``).

The method (``utils.saliency``, ``utils.occlusion``, …) never imports this package.
"""
