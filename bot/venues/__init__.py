"""Venues: the exchanges the bot talks to (Bybit, and the local Bybit-compatible exchange)."""
