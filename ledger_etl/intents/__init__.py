"""Trade intents: alert webhooks (TradingView and the like) turned into validated orders, sent
to Capital.com exactly once.

`payload` (the payload and its JSON Schema), `auth`, `rules` (dealing rules, pure), `risk` (caps,
pure), `store` (the idempotency record and durable queue), `intake` (a delivery becomes a
validated intent), `executor` (the queue, submission, confirms, recovery), `broker` (what the
executor needs of Capital.com), `service` (the ASGI app), `runner` and `cli`.
"""
