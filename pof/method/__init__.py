"""The method: PoF's step (pof.method.pof.PoF, the six steps of the paper in one unit, with its
controls as switches) and SAM (pof.method.sam), the baseline it is compared against. Nothing here
knows about run folders, jobs or the command line: the training drivers (pof.training) call it.
"""

from .pof import PoF
from .sam import SAM

__all__ = ["SAM", "PoF"]
