"""Strategies: the strategy API, the baselines and (later) the model-backed strategies.

Write your own by copying ``strategies/template`` (see its README); import what you need from
:mod:`strategies.api`.
"""
