"""Commitments: FY2026 budget commitments, review workflow, deadlines, realization."""
