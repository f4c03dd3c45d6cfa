"""Millions of Egyptian subscribers behind the fake SMSC: who they are (derived, not stored),
how their handsets behave, and how they answer 1442."""
