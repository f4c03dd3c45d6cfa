"""Scenarios: declarative files that say what a load test does and when it passes."""
