"""Unlearning pillar: FLAT and baseline losses, template answers."""
