"""The trading engine and everything around it that is not a strategy, a model or analysis.

Kept free of imports so that ``python3 -m bot.quickstart`` runs on a bare Python.
"""

__version__ = "0.1.0"
