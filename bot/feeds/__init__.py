"""Where bars come from: replayed history and (with the venue) the live websocket."""
