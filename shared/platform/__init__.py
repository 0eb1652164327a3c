"""The delivery platform every service runs on; business rules stay in the services."""
