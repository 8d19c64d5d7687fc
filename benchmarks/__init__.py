"""Benchmarks for asynctools: see README.md, section Performance."""
