"""spu_circuits: compile linear systems into SPU netlists and simulate them with ngspice.

Hardware side only (numpy, scipy, networkx, PySpice); no torch.
"""

__version__ = "0.1.0"
