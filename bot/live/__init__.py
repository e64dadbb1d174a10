"""Live trading: the executor that sends the engine's orders to an exchange, and its rails."""
