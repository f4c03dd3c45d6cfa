"""The fake SMSC: an asyncio SMPP server built on the sans-IO core in simulator.smpp."""
