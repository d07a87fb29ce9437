"""Events to client services: subscriptions, the outbox, and the dispatcher that pushes it."""
