"""World Models Studio: V (VAE), M (MDN-RNN) and C (controller, evolved with CMA-ES), end to end."""

__version__ = "0.1.0"
