"""kvmpy."""
