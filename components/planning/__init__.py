"""The plan stage's rules: the dataset fingerprint, the device and the time budget -> every training choice.

Each rule is a small function that returns a :class:`~components.planning.decision.Decision` (the
value and a one-line reason). :mod:`components.planning.planner` applies them in order, each on the
values before it (a value the user set wins over the planned one and the rules after it plan around
it), measures the chosen network on the device, fits epochs and steps into the time budget, and
returns the :class:`~components.planning.plan.Plan` that the plan stage writes.
"""
