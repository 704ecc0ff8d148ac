"""Tests of group consultations (issue 12)."""
