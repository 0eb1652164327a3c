"""Invitations: the Rakor, its invitations, RSVP, reminders and attendance."""
