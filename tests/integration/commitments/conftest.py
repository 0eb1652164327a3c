"""Fixtures shared by the commitments integration tests."""

# The real SMTP server the sign-in links are mailed to (the redundant alias re-exports it as a fixture).
from tests.integration.notifications.conftest import smtp_server as smtp_server
