"""The paper-trading daemon: live Bybit (or local exchange) klines → the engine → paper fills."""
