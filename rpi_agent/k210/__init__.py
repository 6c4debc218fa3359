"""K210 (Sipeed Maix) support: kmodel builds with nncase/ncc and host-side simulation.

The board-side MaixPy script lives in ``k210/`` at the repository root; the serial
detection source that reads what it sends is :mod:`rpi_agent.sources.k210`.
"""
