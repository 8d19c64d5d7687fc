"""The maths server from the aiohttp-asynctools 0.1.3 README, runnable offline: ``python -m example``."""
