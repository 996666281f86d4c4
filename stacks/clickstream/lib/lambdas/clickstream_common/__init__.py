"""Clickstream model shared by the functions (carried by the layer)."""
