"""The HTTP layer: what a client talks to.

`app.create_app` builds the FastAPI application (its lifespan loads the answerer off the event
loop); `routes` and `widget` are the endpoints; `auth` and `rate_limit` decide who may ask and how
often; `observability` gives each request an id, an access-log line and metrics, and `body_limit`
refuses over-large bodies before they are read; `error_responses` maps the typed errors of
`service.errors` to HTTP statuses and bodies; `state` is the typed application state and
`dependencies` hands its parts to the routes, so tests can swap them. This layer may import
`service.answer` and `service.llm`; neither of them imports it.
"""
