"""Protocol adapters that plug into the gateway runtime."""
