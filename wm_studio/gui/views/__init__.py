"""Reusable plot widgets: a 2-D search space with a population and its distribution, curves per generation,
the Evolution figure that combines them, and grabbing a widget as an RGB frame for export."""
