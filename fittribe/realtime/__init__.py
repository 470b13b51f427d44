"""Real-time layer: the SSE hub, channel rules, the outbox and presence."""
