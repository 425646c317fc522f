"""Decoding and its caches: the one door to the segmentation engine (maskweb.segment), the
embedding cache (Redis, with a per-process LRU in front), drawing a prompt log into a mask
(previous mask fed back, predictions cached per prompt prefix, one computation per key at a
time), the web process's decode cores handed out first come first served, its decode
processes (one per core, off the GIL), and the prompt grids (upright, stored, work picture).
Nothing here knows of sessions' rules or sockets.
"""
