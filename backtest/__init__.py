"""Running the engine over history, and what to make of the result: metrics and reports."""
