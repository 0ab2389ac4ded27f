"""Market data: price bars from REST and the WebSocket stream, their store and coverage."""
