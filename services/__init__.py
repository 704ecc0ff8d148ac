"""Adapters that are not actors: password hashing, sign-in throttles, email and text senders.

Actors own them and call them; they hold no clinic state and never talk to other actors.
"""
