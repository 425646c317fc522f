"""What a client may send, checked in one place for the HTTP API and the socket alike, and
``ProtocolError``, the protocol's error code with a message a person can act on. Pure: nothing
here touches the database or Redis, so a refused input changed nothing.
"""
