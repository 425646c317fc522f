"""The web app's masking sessions, as a Django app (label ``masking``), in rooms by concern.

Top, the edges, thin (parse, authorise, call the domain off the event loop, answer):
``api`` (HTTP), ``live`` (the session socket), ``worker`` (Celery tasks) and ``management``
(commands). In the middle, ``editing``: the session domain, the one place its rules live.
Below it, ``jobs`` (the encode job), ``decoding`` (the engine, embeddings, drawing a prompt
log, the decode cores and caches) and, at the bottom, ``plumbing`` (Redis, the channel layer,
thread pools) and ``protocol`` (what a client may send). ``models`` and its migrations are
the data every room reads. A room imports only rooms below it (tests/test_layout.py).
"""
