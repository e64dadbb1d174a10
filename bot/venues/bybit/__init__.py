"""Bybit v5: message parsing and protocol logic as pure functions, plus the thin I/O around them."""
