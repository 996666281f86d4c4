"""Booking model shared by the hotel-booking functions (carried by the layer)."""
