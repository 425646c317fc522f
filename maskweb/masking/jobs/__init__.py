"""The encode job below the session domain: encoding a photo once per (content hash, model)
under a Redis lock, marking the waiting sessions, and a progress meter that moves all the
time. It never calls up into the domain: who wants to know when an encode is done passes a
callback (maskweb.masking.editing.masks.encode_and_draw).
"""
