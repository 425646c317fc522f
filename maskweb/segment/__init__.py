"""Pure inference for maskweb: models, prompts, post-processing, vectorization.

numpy in, numpy out. Nothing below this package imports Django, so the Celery worker,
the websocket consumer, the benches and the tests can all use it the same way.
"""
