"""memjax: analog physics simulation of memristive neural networks in JAX.

Layers import one way: devices -> circuits -> network (Flax) -> simulation / training -> command
line and experiments.
"""

from memjax.errors import MemjaxError

__all__ = ["MemjaxError"]
__version__ = "0.1.0"
