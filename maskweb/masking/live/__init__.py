"""The socket edge: the session websocket (``/ws/sessions/<token>/``) and its route. Thin: it
parses and rate-limits each message, calls the session domain off the event loop, and sends
frames; it owns only the socket's own bookkeeping (coalescing a page's prompts, telling a
page that falls behind, hover previews one at a time).
"""
