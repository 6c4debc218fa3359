"""Stand-in for MaixPy's ``KPU`` module (see _kpu_sim.py); absent from a run that plays CanMV."""

from _kpu_sim import deinit, fmap_free, forward, get_output, load, set_outputs, state  # noqa: F401
