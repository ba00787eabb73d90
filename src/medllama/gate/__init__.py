"""The gate: nobody calls a model before accepting its data-use agreement.

`decide.Gate.decide` is the one decision; `app.create_app` builds the service; `deps` holds the
dependencies other routers reuse. Nothing is imported here, so `medllama --help` works without the
`gate` extra installed.
"""
