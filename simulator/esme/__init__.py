"""An asyncio ESME (SMPP client) on the same sans-IO core: for the demo, tests and drivers."""
