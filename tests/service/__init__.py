"""Integration tests of ``burnrate serve`` on a real Kafka broker."""
