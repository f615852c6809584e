"""Benchmarks of adaptive-router: overhead, throughput, queries, memory and a peer.

Run everything with ``python -m benchmarks.run`` (``make bench``); ``--quick`` for a
smoke run, ``--only NAME`` for one section.
"""
