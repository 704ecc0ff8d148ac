"""Group consultations (issue 12): a moderator, up to 60 participants, a group waiting area.

``desk`` (the fixed ``group`` actor) creates sessions and starts each session's call; ``call`` is
that call (the call core on :class:`~actors.group.policy.GroupPolicy`, with the waiting area
inside it); ``messages`` holds every typed message pages and the breakout desk exchange with them.
"""
