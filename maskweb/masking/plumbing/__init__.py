"""The process plumbing every room below the edges uses: Redis connection pools (patient and
quick), live updates to a session's sockets through the channel layer, and the web process's
thread pools (so prompt writes never wait behind decodes).
"""
