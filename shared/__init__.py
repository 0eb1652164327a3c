"""Contracts and small infrastructure helpers shared by the services.

Only event contracts and delivery machinery live here; business logic stays in
each service.
"""
