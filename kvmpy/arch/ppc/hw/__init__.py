"""The simulated PowerPC host hardware."""
