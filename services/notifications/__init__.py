"""Notifications: routing, Indonesian templates, email and webhook delivery, digests."""
