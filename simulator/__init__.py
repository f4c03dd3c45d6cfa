"""USSD/SMS simulator and load-testing harness for the 1442 platform."""
