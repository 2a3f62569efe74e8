"""Simulated MQTT-native devices (AI camera, environment sensor)."""
