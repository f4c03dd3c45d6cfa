"""The load-test harness: the channel between Locust and the SMSC, reply timing."""
