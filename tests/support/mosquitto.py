"""Re-export of the Mosquitto runner shared with the benchmarks."""

from bench.mosquitto import USERS, Mosquitto, mosquitto_binary

__all__ = ["USERS", "Mosquitto", "mosquitto_binary"]
